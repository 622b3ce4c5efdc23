"""The production worker's one-write answers: gunicorn's header waits for the body's first bytes,
so a worker killed mid-answer never leaves a proxy holding a 200 header with no body."""

from __future__ import annotations

import socket
import threading
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
