"""gunicorn's gthread worker (persistent HTTP/1.1 connections, a thread pool), with the same two
guarantees as the sync worker of mldeploy/http/gunicorn_worker.py.

gthread keeps connections open between requests (keep-alive): a client, or nginx's upstream
pool, pays for one TCP handshake and one close per connection rather than per request. On
SIGTERM it already answers a request that arrives on a kept-alive connection with
``Connection: close`` (for up to 2 s), and finishes the requests in flight. What it does not do
is answer the connections the kernel had queued on the listening socket: they are reset when the
last worker closes it. This worker accepts those before it stops accepting, and closes its copy
of the listener at once, so a client either gets a full answer or a refused connection.

gthread's heartbeat to the master comes from its main loop, which keeps turning while a thread
runs a request, so gunicorn's timeout would never end a request that hangs (a client that stops
sending its body half-way holds a thread for good). This worker skips the heartbeat while a
request has been running for more than a second: the master then kills and replaces it once that
request has run for about MLDEPLOY_WORKER_TIMEOUT, as it does a sync worker.

A worker also accepts a connection only while one of its threads is free. gthread accepts
whenever its main loop turns, so a burst of new connections (a load balancer's pool filling up,
a client opening its keep-alive connections at once) could all land on the worker that woke
first, and stay there: measured with wrk's 16 connections, one run in four or five put all 16 on
one of two workers, which then served at half the rate on one core while the other sat idle.
Accepting only with a free thread leaves the rest queued on the listener for a worker that has
one, as the sync worker does, and each worker's share then follows what it can serve.

A busy worker also leaves a new connection queued for :data:`ACCEPT_DEFER` seconds, for an idle
worker to take, while its clients keep their connections open (most of its ended connections
served more than one request, or none has ended yet). Two clients that open their connections at
once (two batch jobs, a pool filling up) otherwise both landed on the worker that woke first
whenever it had a thread free, and kept-alive they stayed there: two keep-alive clients posting
10,000-row batches got about 220 answers a second, against 340-370 once spread (5 rounds each).
The worker stops listening while it waits (an event loop woken by a listener it will not accept
from would spin), and accepts afterwards if the connection is still there. With one request per
connection (``Connection: close`` clients) connections spread by themselves, and a busy worker
that waited for an idle one cost a tenth of the throughput at 16 clients, so it does not wait
then; nor when it is stopping (the drain accepts everything). A connection still queued when its
moment has passed found no idle worker: it is taken at the next free thread, and new connections
are taken at once for :data:`NO_IDLE_HOLD` seconds (a burst of them to a loaded server). Each
left another moment at every free thread instead, a connection waited up to a second for one
under load.

A thread that has answered a kept-alive connection also waits a moment (at most
:data:`LINGER` seconds) for that connection's next request while the worker holds fewer
connections than threads (so each can have a thread, and one stays free), and answers it
itself: a client that sends its requests one after another (concurrency 1: a notebook, a script,
a batch job) is then served by one thread, without gthread's two hand-offs per request (to the
main loop through its pipe and back to a thread through the pool), each a wake-up of another
thread. With more connections (a loaded server, a proxy's pool) it hands each back at
once, as gthread does.

A connection that ends (``Connection: close``, an error, a client gone) is closed by the thread
that answered it. gthread closes it in its main loop, and a graceful close waits for the
client's own close, a round trip during which no other connection of the worker is accepted or
read: with new-connection clients (one request per connection) that made gthread slower than
the sync worker. A new connection's first bytes are waited for with one ``poll`` rather than a
new selector per connection (four system calls).

Each answer's header also waits for its first body bytes and goes out in the same write
(:class:`~mldeploy.http.gunicorn_worker.CoalescingSocket`), so a worker killed mid-answer never
leaves a proxy holding a 200 header with no body.
"""

from __future__ import annotations

import contextlib
import errno
import math
import select
import sys
import time

from gunicorn.workers.gthread import TConn, ThreadWorker

from mldeploy.http.gunicorn_worker import CoalescingSocket

# Seconds a request may run before the heartbeat pauses: above one turn of the main loop (1 s at
# most), so that the last beat comes when the oldest request is this old at the latest.
HEARTBEAT_PAUSE = 1.0
# Seconds a thread waits for the next request on the connection it just answered, in slices (the
# worker's state is checked between them): a client's next request arrives within a fraction of
# a millisecond when it sends them one after another; an idle connection goes back to the main
# loop after this.
LINGER = 0.002
LINGER_SLICE_MS = 0.5
# Seconds a busy worker leaves a new connection queued for an idle worker (module docstring).
ACCEPT_DEFER = 0.002
# Seconds a worker takes new connections at once after one it left was still queued when the
# moment passed: no worker was idle, and while that lasts (a burst of connections to a loaded
# server, a pool filling up) each left for a moment only waited longer for a thread.
NO_IDLE_HOLD = 1.0
# How much one ended connection moves the share of them that served more than one request; the
# worker waits before accepting while that share is at least PERSISTENT_SHARE.
PERSISTENT_WEIGHT = 0.1
PERSISTENT_SHARE = 0.5
# Seconds between the interpreter's thread switches while the worker drains its listeners.
DRAIN_SWITCH_INTERVAL = 0.00002


class PolledConn(TConn):
    """gunicorn's TConn, its wait for a new connection's first bytes one ``poll`` call."""

    def wait_for_data(self, timeout: float) -> bool:
        """Whether the request's first bytes (or the client's close) came within ``timeout`` seconds."""
        if self.data_ready:
            return True
        poller = select.poll()
        try:
            poller.register(self.sock.fileno(), select.POLLIN)
            ready = poller.poll(timeout * 1000)
        except (OSError, ValueError):
            return False
        self.data_ready = bool(ready)
        return self.data_ready


class DrainingThreadWorker(ThreadWorker):
    """A gthread worker that answers already-queued connections when told to stop, and sends each
    answer's header and first body bytes in one write."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        # When each request in flight began (monotonic), by connection; written by the pool's
        # threads, read by the main loop (single dict operations are atomic under the GIL).
        self.started: dict[int, float] = {}
        # Connections handed to the thread pool and not yet back: at cfg.threads, stop accepting.
        # Changed on the main loop's thread only (accept, keep-alive wake-ups, finish_request).
        self.busy = 0
        self.drained = False
        # The share of ended connections that served more than one request (moving average);
        # until one ends, the clients are taken to keep theirs open.
        self.persistent = 1.0
        # While a queued connection is left to an idle worker: when this one takes it after all.
        self.accept_at: float | None = None
        # Until when connections are taken at once (no worker was idle: NO_IDLE_HOLD).
        self.no_idle_until = -math.inf

    def notify(self) -> None:
        """Beat, unless a request has been running for more than HEARTBEAT_PAUSE seconds."""
        started = tuple(self.started.values())
        if started and time.monotonic() - min(started) > HEARTBEAT_PAUSE:
            return
        super().notify()

    def handle_request(self, req: object, conn: object) -> bool:
        """ThreadWorker.handle_request with the answer written through a CoalescingSocket; returns
        whether the connection is kept alive. The parser keeps reading the socket itself."""
        raw = conn.sock
        sock = conn.sock = CoalescingSocket(raw)
        self.started[id(conn)] = time.monotonic()
        try:
            keep_alive = super().handle_request(req, conn)
            # Not in the `finally`: when the app fails after the header was held, sending the
            # header alone would be exactly the torn answer this avoids.
            sock.flush()
        finally:
            conn.sock = raw
            self.started.pop(id(conn), None)
        return keep_alive

    def handle(self, conn: object) -> object:
        """ThreadWorker.handle, then the connection's next requests too while each comes within
        LINGER seconds and the worker holds fewer connections than threads (the module's docstring)."""
        while True:
            result = super().handle(conn)
            if result is True and self._next_request_comes(conn):
                continue
            if result is False:  # the connection ends: closed here, not in the main loop
                served = getattr(conn.parser, "req_count", 0)
                self.persistent += PERSISTENT_WEIGHT * ((served > 1) - self.persistent)
                conn.closed_by_thread = True
                with contextlib.suppress(OSError):  # already closed (a TLS end of file)
                    conn.close(graceful=True)
            return result

    def _next_request_comes(self, conn: object) -> bool:
        """Whether ``conn`` has its next request ready now or within LINGER seconds, waiting only
        while the worker holds fewer connections than threads and is not stopping."""
        if conn.parser.unreader.buf.getvalue():  # already read (a pipelined request)
            return True
        poller = select.poll()
        poller.register(conn.sock.fileno(), select.POLLIN)
        deadline = time.monotonic() + LINGER
        # Fewer connections than threads: each can have a thread waiting on it and one is still
        # free for a new connection, so waiting here keeps no one else waiting.
        while self.alive and self.nr_conns < self.cfg.threads:
            if poller.poll(LINGER_SLICE_MS):
                return True
            if time.monotonic() >= deadline:
                break
        return False

    def enqueue_req(self, conn: object) -> None:
        """Hand ``conn`` to the thread pool; with every thread taken, stop accepting until one is free."""
        self.busy += 1
        if self.busy >= self.cfg.threads and self.alive:
            super().set_accept_enabled(False)
        super().enqueue_req(conn)

    def finish_request(self, conn: object, fs: object) -> None:
        """A thread is free again (run()'s next turn accepts again, see set_accept_enabled); a
        connection its thread closed is only counted out."""
        self.busy -= 1
        if getattr(conn, "closed_by_thread", False):
            self.nr_conns -= 1
            return
        super().finish_request(conn, fs)

    def accept(self, listener: object) -> None:
        """ThreadWorker.accept, the connection a :class:`PolledConn`; a busy worker whose clients
        keep their connections first leaves it ACCEPT_DEFER seconds to an idle one."""
        if self._leaves_to_idle_worker():
            return
        self.accept_at = None
        try:
            client_sock, client_addr = listener.accept()
            self.nr_conns += 1
            client_sock.setblocking(True)
            self.enqueue_req(PolledConn(self.cfg, client_sock, client_addr, listener.getsockname()))
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise

    def _leaves_to_idle_worker(self) -> bool:
        """Whether to leave the queued connection to an idle worker for now, and stop listening
        until ACCEPT_DEFER has passed (module docstring)."""
        if not self.busy or not self.alive or self.persistent < PERSISTENT_SHARE:
            return False
        now = time.monotonic()
        if now < self.no_idle_until:
            return False
        if self.accept_at is None:
            self.accept_at = now + ACCEPT_DEFER
        if self.accept_at <= now:  # the moment passed and no idle worker took it
            self.no_idle_until = now + NO_IDLE_HOLD
            return False
        ThreadWorker.set_accept_enabled(self, False)
        return True

    def _deferral_left(self) -> float:
        """Seconds until this worker takes a connection it left to an idle one (negative once
        due; infinitely far back when it left none)."""
        return -math.inf if self.accept_at is None else self.accept_at - time.monotonic()

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        """ThreadWorker's, waking when a connection left to an idle worker is this one's to take."""
        left = self._deferral_left()
        if left > 0 and not self._accepting:
            timeout = min(timeout, left)
        elif self.accept_at is not None and left < -ACCEPT_DEFER and not self._connection_queued():
            # The connection went to another worker: the next one is left to an idle worker
            # again. While it still waits (every thread here was busy since), it is due: taken
            # at the next free thread. Timed out instead, each free thread left it another
            # moment, and under load a connection waited up to a second to be accepted (p99 at
            # 16 keep-alive clients 0.4-1.1 s, against 14-25 ms without the wait).
            self.accept_at = None
        super().wait_for_and_dispatch_events(timeout)

    def _connection_queued(self) -> bool:
        """Whether a connection waits on one of the listeners to be accepted (asked only while a
        connection is left to an idle worker: the drain's accept clears that before it closes
        the listeners)."""
        poller = select.poll()
        for listener in self.sockets:
            poller.register(listener.fileno(), select.POLLIN)
        return bool(poller.poll(0))

    def set_accept_enabled(self, enabled: bool) -> None:
        """Start or stop accepting; stopping because the worker is told to stop drains first.
        run() asks to accept on each turn while under its connection limit: only with a free
        thread, and not while a queued connection is left to an idle worker."""
        if enabled and self.busy >= self.cfg.threads:
            enabled = False
        if enabled and self.busy and self._deferral_left() > 0:
            enabled = False
        super().set_accept_enabled(enabled)
        # Drained whether or not accepting was paused for busy threads when the stop came.
        if not enabled and not self.alive and not self.drained:
            self.drained = True
            self.drain()

    def drain(self) -> None:
        """Accept every connection queued on the listeners now (run() then answers each, with
        ``Connection: close``, within the graceful timeout), then close the listeners: a
        connection that comes later is refused rather than queued and reset."""
        # A connection that comes between the last accept (nothing left) and the close is queued,
        # then reset with the listener. After each system call this thread waits for the GIL, up
        # to sys.getswitchinterval() (5 ms) while the pool's threads answer requests: that wait
        # made the window wide enough for a reconnecting client to land in it (1 run in 30 of
        # tests/test_shutdown.py's load with other work on the machine). For the drain it is short.
        interval = sys.getswitchinterval()
        sys.setswitchinterval(DRAIN_SWITCH_INTERVAL)
        try:
            for listener in self.sockets:
                while True:
                    before = self.nr_conns
                    self.accept(listener)  # non-blocking; counts what it accepted in nr_conns
                    if self.nr_conns == before:
                        break
                # Closed now rather than at the end of run(): a connection queued meanwhile would be reset.
                listener.close()
        finally:
            sys.setswitchinterval(interval)
