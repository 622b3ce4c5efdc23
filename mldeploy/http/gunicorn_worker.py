"""gunicorn's sync worker, plus a drain on shutdown and answers sent in one write.

On SIGTERM a sync worker finishes its current request and exits; connections the kernel had
already queued on the listening socket (accepted by TCP, not yet by a worker) are then reset
unanswered. This worker answers those queued connections before it exits, then closes its copy
of the listener at once, so a client either gets a full answer or a refused connection.

gunicorn sends a response's header and its body in two ``sendall`` calls. A worker killed between
them (SIGKILL, the OOM killer, a crash) leaves a 200 header with no body: a proxy has already
passed the header on and cannot retry, so the client gets a torn answer. Holding the header back
and sending it with the first body bytes makes a small answer one write: it is either sent whole
or not at all, and nginx retries the latter on the other replica. A large body is sent after the
header in the same gather write (``sendmsg``), without joining them into a new buffer first.
"""

from __future__ import annotations

import errno
import socket
import time

from gunicorn.workers.sync import SyncWorker

# accept() on the non-blocking listener says "nothing queued" (or a client gave up) with these.
NOTHING_QUEUED = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED)


# Up to this many body bytes, the header and the body are joined into one buffer (copying a few
# KiB costs less than a sendmsg call's Python loop); beyond it, sendmsg sends both buffers as
# they are, so a large batch's answer is not copied once more just to put its header in front.
JOINED_BELOW = 64 * 1024


def send_buffers(sock: socket.socket, buffers: list[bytes]) -> None:
    """Send every byte of ``buffers``, in order, with ``sendmsg`` (a gather write: no copy
    into one buffer). A send may take only part of them; the loop sends the rest."""
    views = [memoryview(b) for b in buffers if len(b)]
    while views:
        sent = sock.sendmsg(views)
        while views and sent >= len(views[0]):
            sent -= len(views.pop(0))
        if sent:
            views[0] = views[0][sent:]


class CoalescingSocket:
    """A client socket whose first ``sendall`` (gunicorn's header) waits for the next one (the
    body's first bytes) and goes out with it; every other call passes straight through."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._held: bytes | None = None
        self._first = True

    def sendall(self, data: bytes) -> None:
        """Hold the first write; send the held bytes together with the next one."""
        if self._first:
            self._first = False
            self._held = bytes(data)
            return
        if self._held is not None:
            held, self._held = self._held, None
            if len(data) < JOINED_BELOW:
                data = held + data
            else:
                send_buffers(self._sock, [held, data])
                return
        self._sock.sendall(data)

    def sendfile(self, file: object, offset: int = 0, count: int | None = None) -> int:
        """A file body goes out by itself: send the held header first."""
        self.flush()
        return self._sock.sendfile(file, offset, count)

    def flush(self) -> None:
        """Send what is held (an answer with no body, or before the worker closes the socket)."""
        if self._held is not None:
            held, self._held = self._held, None
            self._sock.sendall(held)

    def __getattr__(self, name: str) -> object:
        return getattr(self._sock, name)


class DrainingSyncWorker(SyncWorker):
    """A sync worker that answers already-queued connections when told to stop, and sends each
    answer's header and first body bytes in one write."""

    def handle_request(self, listener: socket.socket, req: object, client: socket.socket, addr: object) -> None:
        """SyncWorker.handle_request on a socket that coalesces the header with the body."""
        sock = CoalescingSocket(client)
        super().handle_request(listener, req, sock, addr)
        # Not in a `finally`: when the app fails after the header was held, sending the header
        # alone would be exactly the torn answer this avoids; the connection closes unanswered.
        sock.flush()

    def run(self) -> None:
        """Serve until told to stop (SyncWorker.run), then drain the listeners."""
        super().run()
        self.drain()

    def drain(self) -> None:
        """Accept and answer queued connections until none is waiting, within the grace period."""
        deadline = time.monotonic() + max(self.cfg.graceful_timeout - 1, 1)
        served = True
        while served and time.monotonic() < deadline:
            served = False
            for listener in self.sockets:
                try:
                    self.accept(listener)
                    served = True
                except OSError as exc:
                    if exc.errno not in NOTHING_QUEUED:
                        raise
            self.notify()
        # Closed now rather than at interpreter exit: a connection queued meanwhile would be reset.
        for listener in self.sockets:
            listener.close()
