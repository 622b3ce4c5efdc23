"""The production worker's one-write answers: gunicorn's header waits for the body's first bytes,
so a worker killed mid-answer never leaves a proxy holding a 200 header with no body."""

from __future__ import annotations

import contextlib
import math
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

from mldeploy.http.gunicorn_worker import JOINED_BELOW, CoalescingSocket, send_buffers


class RecordingSocket:
    """The real socket's part that the wrapper writes to, recording each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes]] = []

    def sendall(self, data: bytes) -> None:
        self.calls.append(("sendall", bytes(data)))

    def sendfile(self, file: object, offset: int = 0, count: int | None = None) -> int:
        self.calls.append(("sendfile", b""))
        return 0

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", 8000)


def test_the_header_goes_out_with_the_first_body_bytes() -> None:
    raw = RecordingSocket()
    sock = CoalescingSocket(raw)  # type: ignore[arg-type]
    sock.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
    assert raw.calls == []
    sock.sendall(b'{"Class": "setosa"}')
    sock.sendall(b"more")
    sock.flush()
    assert raw.calls == [("sendall", b'HTTP/1.1 200 OK\r\n\r\n{"Class": "setosa"}'), ("sendall", b"more")]


def test_an_answer_without_body_is_sent_at_flush_and_only_once() -> None:
    raw = RecordingSocket()
    sock = CoalescingSocket(raw)  # type: ignore[arg-type]
    sock.sendall(b"HTTP/1.1 204 No Content\r\n\r\n")
    sock.flush()
    sock.flush()
    assert raw.calls == [("sendall", b"HTTP/1.1 204 No Content\r\n\r\n")]


def test_a_file_body_sends_the_held_header_first(tmp_path: Path) -> None:
    raw = RecordingSocket()
    sock = CoalescingSocket(raw)  # type: ignore[arg-type]
    sock.sendall(b"HEADER")
    with (tmp_path / "body").open("wb+") as body:
        sock.sendfile(body)
    assert raw.calls == [("sendall", b"HEADER"), ("sendfile", b"")]
    assert sock.getsockname() == ("127.0.0.1", 8000)  # everything else passes through


def test_over_a_real_socket_pair_the_peer_reads_the_whole_answer() -> None:
    left, right = socket.socketpair()
    with left, right:
        sock = CoalescingSocket(left)
        sock.sendall(b"HEAD|")
        sock.sendall(b"BODY")
        sock.flush()
        left.shutdown(socket.SHUT_WR)
        assert right.recv(100) == b"HEAD|BODY"


class TrickleSocket(RecordingSocket):
    """A socket whose every ``sendmsg`` takes at most ``step`` bytes, as a full send buffer does."""

    def __init__(self, step: int) -> None:
        super().__init__()
        self.step = step
        self.received = bytearray()

    def sendmsg(self, buffers: list[memoryview]) -> int:
        taken = b"".join(bytes(b) for b in buffers)[: self.step]
        self.calls.append(("sendmsg", taken))
        self.received += taken
        return len(taken)


def test_a_large_body_follows_the_header_in_gather_writes_until_every_byte_is_sent() -> None:
    header, body = b"HTTP/1.1 200 OK\r\n\r\n", bytes(range(256)) * (JOINED_BELOW // 256 + 1)
    for step in (7, len(header), len(header) + 1, 4096, len(header) + len(body)):
        raw = TrickleSocket(step)
        sock = CoalescingSocket(raw)  # type: ignore[arg-type]
        sock.sendall(header)
        sock.sendall(body)
        sock.flush()
        assert bytes(raw.received) == header + body, step
        assert {name for name, _ in raw.calls} == {"sendmsg"}  # never joined into one buffer
        assert len(raw.calls) == -(-(len(header) + len(body)) // step)


def test_send_buffers_skips_empty_buffers_and_sends_each_in_order() -> None:
    raw = TrickleSocket(3)
    send_buffers(raw, [b"", b"ab", b"", b"cdefg"])  # type: ignore[arg-type]
    assert [data for _, data in raw.calls] == [b"abc", b"def", b"g"]


def test_over_a_real_socket_pair_a_large_answer_arrives_whole() -> None:
    left, right = socket.socketpair()
    body = b"x" * (4 * 1024 * 1024)  # larger than the socket's buffers: the sends are partial
    received = bytearray()

    def read() -> None:
        while chunk := right.recv(1 << 16):
            received.extend(chunk)

    with left, right:
        reader = threading.Thread(target=read)
        reader.start()
        sock = CoalescingSocket(left)
        sock.sendall(b"HEAD|")
        sock.sendall(body)
        sock.flush()
        left.shutdown(socket.SHUT_WR)
        reader.join(30)
    assert bytes(received) == b"HEAD|" + body


def threaded_worker():
    """The production gthread worker with 2 threads, not started (no fork, no main loop), serving
    a WSGI app that answers ``ok``: the tests drive its methods themselves."""
    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    from mldeploy.http.gunicorn_thread_worker import DrainingThreadWorker

    def app(environ: dict, start_response) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    cfg = Config()
    cfg.set("threads", 2)
    worker = DrainingThreadWorker(0, 0, [], None, 30, cfg, Logger(cfg))
    worker.wsgi = app
    return worker


@contextlib.contextmanager
def listening_worker() -> Iterator[tuple[object, socket.socket, Callable[[], socket.socket], list[socket.socket]]]:
    """:func:`threaded_worker` with its pool and poller, its listener on a loopback port: yields
    the worker, the listener, a function that queues a new client connection on it, and those
    clients. At the end each client sends a request, which must be answered and end, and the
    worker's pool stops."""
    import selectors

    worker = threaded_worker()
    worker.tpool, worker.poller = worker.get_thread_pool(), selectors.DefaultSelector()
    clients: list[socket.socket] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        worker.sockets = [listener]

        def queued_connection() -> socket.socket:
            clients.append(socket.create_connection(listener.getsockname(), timeout=30))
            return clients[-1]

        try:
            yield worker, listener, queued_connection, clients
        finally:
            for client in clients:
                client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := client.recv(65536):
                    answer += chunk
                client.close()
                assert answer.startswith(b"HTTP/1.1 200")
            worker.tpool.shutdown(wait=True)
            worker.poller.close()
            worker.method_queue.close()
            worker.tmp.close()


def test_the_threaded_worker_closes_an_ended_connection_on_its_own_thread() -> None:
    """A ``Connection: close`` answer ends with gunicorn's graceful close, which waits for the
    client's own close. The gthread worker does that wait in ``handle`` (the pool thread that
    answered), not in ``finish_request`` (its main loop, where every other connection would wait
    behind it): ``handle`` returns only once the client has closed, and ``finish_request`` then
    only counts the connection out."""
    from concurrent.futures import Future

    from mldeploy.http.gunicorn_thread_worker import PolledConn

    worker = threaded_worker()
    cfg = worker.cfg
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname(), timeout=30)
        server_side, address = listener.accept()
        server_side.setblocking(True)
        conn = PolledConn(cfg, server_side, address, listener.getsockname())
        worker.nr_conns = worker.busy = 1
        client_closed = threading.Event()
        returned: dict[str, object] = {}

        def handle() -> None:
            returned["result"] = worker.handle(conn)
            returned["after the client's close"] = client_closed.is_set()

        thread = threading.Thread(target=handle)
        thread.start()
        try:
            client.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            answer = b""
            while chunk := client.recv(65536):  # to the server's end of its side
                answer += chunk
        finally:
            client_closed.set()
            client.close()
        thread.join(30)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok")
    assert returned == {"result": False, "after the client's close": True}
    assert server_side.fileno() == -1  # closed by handle
    done: Future = Future()
    done.set_result(False)
    worker.finish_request(conn, done)
    worker.tmp.close()  # the heartbeat file gunicorn's Worker opens
    assert (worker.nr_conns, worker.busy) == (0, 0)


def test_a_connection_no_idle_worker_took_is_taken_at_the_next_free_thread_and_the_next_ones_at_once() -> None:
    """Under load no worker is idle: a connection left queued for a moment must then be taken at
    the next free thread, however long every thread stays busy first (its moment restarted at
    each free thread, a connection waited up to a second: p99 0.4-1.1 s at 16 keep-alive
    clients), and the connections after it at once, while no worker was idle lately. Once a
    connection left for a moment has gone to another worker, the next one is left again."""
    import time

    from mldeploy.http.gunicorn_thread_worker import ACCEPT_DEFER

    with listening_worker() as (worker, listener, queued_connection, clients):
        worker.busy = worker.nr_conns = 1
        worker.set_accept_enabled(True)
        queued_connection()
        worker.accept(listener)
        assert worker.nr_conns == 1 and worker.accept_at is not None, "left for a moment"
        worker.busy = worker.cfg.threads  # every thread busy: not accepting
        worker.set_accept_enabled(True)
        assert not worker._accepting
        time.sleep(ACCEPT_DEFER * 3)  # long past the moment, still queued
        due = worker.accept_at
        worker.wait_for_and_dispatch_events(0)  # run()'s turns while every thread is busy
        assert worker.accept_at == due, "its moment must not start again"
        worker.busy = 1  # a thread is free
        worker.set_accept_enabled(True)
        assert worker._accepting
        worker.accept(listener)
        assert worker.nr_conns == 2 and worker.accept_at is None, "taken at the first free thread"
        queued_connection()
        worker.accept(listener)
        assert worker.nr_conns == 3, "no worker was idle lately: taken at once"

        worker.no_idle_until = -math.inf  # lately is over
        worker.set_accept_enabled(True)
        taken_elsewhere = queued_connection()
        worker.accept(listener)
        assert worker.nr_conns == 3 and worker.accept_at is not None, "left for a moment"
        other_worker, _ = listener.accept()  # an idle worker takes it
        clients.remove(taken_elsewhere)
        taken_elsewhere.close()
        other_worker.close()
        time.sleep(ACCEPT_DEFER * 3)
        worker.wait_for_and_dispatch_events(0)
        assert worker.accept_at is None, "gone elsewhere: the next one is left for a moment again"


def test_a_busy_threaded_worker_leaves_a_new_connection_a_moment_to_an_idle_one() -> None:
    """Two clients that open their connections at once (two batch jobs) must not both land on
    the worker that woke first and stay there, kept alive, while the other worker idles: a busy
    worker whose clients keep their connections leaves a queued one for ACCEPT_DEFER seconds,
    not listening meanwhile, then takes it if no idle worker has. An idle worker, one whose
    connections end after a request, and a stopping one (the drain) accept at once."""
    import time

    from mldeploy.http.gunicorn_thread_worker import ACCEPT_DEFER

    with listening_worker() as (worker, listener, queued_connection, _clients):
        worker.busy = worker.nr_conns = 1  # a request of another connection in flight
        worker.set_accept_enabled(True)
        queued_connection()
        worker.accept(listener)
        assert worker.nr_conns == 1 and not worker._accepting, "left queued, and not listening"
        worker.set_accept_enabled(True)  # run()'s next turn, before the moment has passed
        assert not worker._accepting
        time.sleep(ACCEPT_DEFER * 2)  # no idle worker took it
        worker.set_accept_enabled(True)
        assert worker._accepting
        worker.accept(listener)
        assert worker.nr_conns == 2 and worker.accept_at is None, "taken after the moment"

        worker.busy = 0  # idle
        queued_connection()
        worker.accept(listener)
        assert worker.nr_conns == 3
        worker.busy, worker.persistent = 1, 0.2  # most connections ended after one request
        queued_connection()
        worker.accept(listener)
        assert worker.nr_conns == 4
        worker.persistent, worker.alive = 1.0, False  # stopping: the drain takes everything
        queued_connection()
        worker.accept(listener)
        assert worker.nr_conns == 5
