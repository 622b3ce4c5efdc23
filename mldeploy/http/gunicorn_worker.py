"""gunicorn's sync worker, plus a drain on shutdown.

On SIGTERM a sync worker finishes its current request and exits; connections the kernel had
already queued on the listening socket (accepted by TCP, not yet by a worker) are then reset
unanswered. This worker answers those queued connections before it exits, then closes its copy
of the listener at once, so a client either gets a full answer or a refused connection.
"""

from __future__ import annotations

import errno
import time

from gunicorn.workers.sync import SyncWorker

# accept() on the non-blocking listener says "nothing queued" (or a client gave up) with these.
NOTHING_QUEUED = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ECONNABORTED)


class DrainingSyncWorker(SyncWorker):
    """A sync worker that answers already-queued connections when told to stop."""

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
