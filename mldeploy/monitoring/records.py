"""What the prediction log holds: one :class:`LogRecord` per answered row, the ids requests are
logged under, and which requests are sampled into it."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass
from datetime import datetime

_HASH_BYTES = 8
_HASH_SPAN = float(1 << (8 * _HASH_BYTES))
# UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, the version (7), 12 random bits, the variant
# (0b10), 62 random bits.
_RAND_B_BITS = 62
_UUID7 = (0x7 << 76) | (0b10 << 62)
# The random parts of ids are read from the system's generator this many at a time: a read per id
# was a system call per request that also let go of the interpreter's lock, which another thread
# waiting for it (the prediction log's writer, the server's other threads) then took.
_IDS_PER_READ = 256
_ID_RANDOM_BYTES = 10  # 80 bits, 74 used
# The random parts not handed out yet. A forked child starts with none (the stdlib's random
# module reseeds itself after a fork the same way), so parent and child never share one.
_unused: list[int] = []


def _forget_unused() -> None:
    global _unused
    _unused = []


os.register_at_fork(after_in_child=_forget_unused)


def _random_part() -> int:
    """80 fresh random bits, never handed out twice."""
    try:
        return _unused.pop()  # atomic: two threads never get the same value
    except IndexError:
        return _read_random_parts()


def _read_random_parts() -> int:
    global _unused
    raw = os.urandom(_IDS_PER_READ * _ID_RANDOM_BYTES)
    size = _ID_RANDOM_BYTES
    unused = [int.from_bytes(raw[i : i + size]) for i in range(0, len(raw), size)]
    first = unused.pop()
    _unused = unused  # a thread that read at the same time keeps its own values
    return first


def new_request_id() -> str:
    """A fresh request id: a UUIDv7 as 32 hex digits, the time of its making first.

    Time-ordered on purpose: the log's table is keyed by request id, and a key that sorts after
    the last one lands on the index's last page. A random key (a UUIDv4) lands on any page, so
    every insert rewrote one whole page of the index once it outgrew SQLite's page cache
    (``python bench/log_keys.py``: 4.8 µs an insert at 50,000 rows and 19.8 µs at 300,000, against
    3.1 and 3.2 µs for ordered keys). The 74 random bits come from the system's generator (read
    for 256 ids at a time, and afresh in a forked process), so ids stay unguessable.
    """
    ms = time.time_ns() // 1_000_000
    rand = _random_part()
    rand_a, rand_b = (rand >> _RAND_B_BITS) & 0xFFF, rand & ((1 << _RAND_B_BITS) - 1)
    return f"{(ms & 0xFFFF_FFFF_FFFF) << 80 | _UUID7 | rand_a << 64 | rand_b:032x}"


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One answered row: which request and row, which model and version, when, what went in and
    what came out (the answer's keys from :mod:`mldeploy.contract`: ``Class`` or ``Prediction``,
    and ``Probabilities`` when the model has them)."""

    request_id: str
    row: int
    model: str
    version: str
    time: datetime  # UTC
    inputs: dict
    outputs: dict


def sampled(request_id: str, rate: float) -> bool:
    """Whether ``request_id`` falls in a sample of ``rate`` (0 to 1) of all requests.

    Decided by a hash of the id, not at random, so every worker and replica (and a later
    feedback for the same request) agrees, and all rows of a request are in or out together.
    """
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.blake2b(request_id.encode("utf-8", "surrogatepass"), digest_size=_HASH_BYTES).digest()
    return int.from_bytes(digest, "big") / _HASH_SPAN < rate
