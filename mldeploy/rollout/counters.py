"""Counts every worker and replica shares: one SQLite file beside the model's rollout state.

The request path only adds to a dict in memory; a thread per process adds those sums to the file
every :data:`FLUSH_SECONDS` (one transaction), so a request never waits for the disk and the
file sees a few writes a second whatever the traffic. Readers (``rollout status``, the
auto-abort check) sum over every process's flushes.

Latency is kept as a histogram of buckets :data:`BUCKET_RATIO` apart (10 % wide), from which
p50 and p99 are read: exact to the bucket, whatever the number of requests.
"""

from __future__ import annotations

import atexit
import collections
import contextlib
import logging
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

COUNTERS_FILE = "rollout.sqlite3"
FLUSH_SECONDS = 0.25
BUCKET_RATIO = 1.1
BUCKET_FLOOR = 1e-5  # seconds: bucket 0 holds everything faster
# Counter keys (per rollout and arm); a class count is CLASS_PREFIX + label.
REQUESTS, ROWS, ERRORS, COMPARED, AGREED, DROPPED = "requests", "rows", "errors", "compared", "agreed", "dropped"
LATENCY_PREFIX, CLASS_PREFIX = "latency.", "class."

SCHEMA = """CREATE TABLE IF NOT EXISTS counts (
    rollout TEXT NOT NULL, arm TEXT NOT NULL, key TEXT NOT NULL, value REAL NOT NULL,
    PRIMARY KEY (rollout, arm, key))"""
UPSERT = """INSERT INTO counts (rollout, arm, key, value) VALUES (?, ?, ?, ?)
    ON CONFLICT (rollout, arm, key) DO UPDATE SET value = value + excluded.value"""


def latency_bucket(seconds: float) -> int:
    """The histogram bucket of a latency."""
    if seconds <= BUCKET_FLOOR:
        return 0
    return 1 + int(math.log(seconds / BUCKET_FLOOR) / math.log(BUCKET_RATIO))


def bucket_seconds(bucket: int) -> float:
    """A bucket's middle (geometric), in seconds."""
    if bucket == 0:
        return BUCKET_FLOOR
    return BUCKET_FLOOR * BUCKET_RATIO ** (bucket - 0.5)


def quantile(histogram: dict[int, float], q: float) -> float | None:
    """The ``q`` quantile (0-1) of a latency histogram, in seconds; None when it is empty."""
    total = sum(histogram.values())
    if total <= 0:
        return None
    wanted, seen = q * total, 0.0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= wanted:
            return bucket_seconds(bucket)
    return bucket_seconds(max(histogram))


class SharedCounters:
    """Counters of one model's rollouts, summed across processes in ``folder``/rollout.sqlite3.
    ``after_flush`` is called (in the flushing thread) after each flush that wrote something."""

    def __init__(self, folder: Path, after_flush: Callable[[], None] | None = None) -> None:
        self.path = Path(folder) / COUNTERS_FILE
        self.after_flush = after_flush
        self._pending: collections.Counter[tuple[str, str, str]] = collections.Counter()
        self._lock = threading.Lock()
        self._pid: int | None = None  # the process whose thread flushes (a fork starts its own)
        self._local = threading.local()
        self._wake = threading.Event()

    # -- the request path: memory only ------------------------------------------------------

    def add(self, rollout: str, arm: str, counts: dict[str, float]) -> None:
        """Add ``counts`` (``{key: amount}``) to the rollout's arm."""
        with self._lock:
            for key, amount in counts.items():
                self._pending[(rollout, arm, key)] += amount
        if self._pid != os.getpid():
            self._start()

    # -- flushing ----------------------------------------------------------------------------

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
        threading.Thread(target=self._run, name="mldeploy-rollout-counters", daemon=True).start()
        atexit.register(self.flush)

    def _run(self) -> None:
        pid = os.getpid()
        while self._pid == pid:
            self._wake.wait(FLUSH_SECONDS)
            self._wake.clear()
            try:
                wrote = self.flush()
                if wrote and self.after_flush is not None:
                    self.after_flush()
            except Exception:  # never let a disk problem kill the thread: the next flush retries
                log.exception("cannot write rollout counters to %s", self.path)
                time.sleep(FLUSH_SECONDS)

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            conn = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(SCHEMA)
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def flush(self) -> bool:
        """Write what this process counted since the last flush; returns whether there was any."""
        with self._lock:
            pending, self._pending = self._pending, collections.Counter()
        if not pending:
            return False
        try:
            conn = self._connection()
            with contextlib.closing(conn.cursor()) as cur:
                cur.execute("BEGIN IMMEDIATE")
                cur.executemany(UPSERT, [(*key, value) for key, value in pending.items()])
                cur.execute("COMMIT")
        except BaseException:
            with self._lock:  # keep the counts for the next try
                self._pending.update(pending)
            raise
        return True

    def close(self) -> None:
        """Close this thread's connection to the file (a reader made for one look)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- reading -----------------------------------------------------------------------------

    def totals(self, rollout: str) -> dict[str, dict[str, float]]:
        """``{arm: {key: value}}`` of one rollout, summed over every process's flushes."""
        if not self.path.exists():
            return {}
        found: dict[str, dict[str, float]] = collections.defaultdict(dict)
        rows = self._connection().execute("SELECT arm, key, value FROM counts WHERE rollout = ?", (rollout,))
        for arm, key, value in rows:
            found[arm][key] = value
        return dict(found)
