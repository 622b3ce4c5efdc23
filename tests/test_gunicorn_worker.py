"""The production worker's one-write answers: gunicorn's header waits for the body's first bytes,
so a worker killed mid-answer never leaves a proxy holding a 200 header with no body."""

from __future__ import annotations

import socket
from pathlib import Path

from mldeploy.http.gunicorn_worker import CoalescingSocket


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
