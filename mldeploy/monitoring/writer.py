"""The prediction log's front: :meth:`PredictionLog.record` costs the caller a lock and an append;
one background thread per process encodes, batches and writes the records, waits out an outage
of the database, and applies retention.

Nothing here raises into the caller. A record that cannot be kept is counted as dropped, with
its reason, and each episode (a full queue, an unreachable database) logs one warning when it
starts and one line when it ends, never one per record.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from mldeploy.monitoring.packing import pack_json
from mldeploy.monitoring.records import LogRecord, new_request_id, sampled
from mldeploy.monitoring.store import Row, Store, display_name, open_store

if TYPE_CHECKING:
    from modeler.inference import Inference

log = logging.getLogger("mldeploy.monitoring")

# Why a record was dropped: the label a dropped-records counter carries.
QUEUE_FULL = "queue_full"  # the writer fell behind (or waits out an outage) and the queue is full
DATABASE = "database"  # still unwritten when close() gave up waiting for an unreachable database
REJECTED = "rejected"  # the database refused the batch itself, or a value could not be encoded
INVALID = "invalid"  # record() got arguments it cannot log (rows and outputs that do not pair up)
CLOSED = "closed"  # recorded after close()
DROP_REASONS = (QUEUE_FULL, DATABASE, REJECTED, INVALID, CLOSED)

DEFAULT_MODEL = "default"
# Defaults of the settings (see the package docstring for their MLDEPLOY_* names).
QUEUE_SIZE = 100_000
BATCH_SIZE = 1_000
FLUSH_INTERVAL = 1.0
CLOSE_TIMEOUT = 5.0
CLOSE_GRACE = 1.0  # seconds close() waits beyond its timeout for the writer to finish
RETRY_INTERVAL = 2.0
PRUNE_INTERVAL = 60.0
WARN_INTERVAL = 60  # seconds between two warnings about refused records
# What bounds the queue is memory: a queued one-row request holds about 600 bytes (its request id,
# answer and validated row), a row of a batch about 40 (a row of the validated array and its
# answer's index). So a request takes one place in the queue, plus one per ROWS_PER_PLACE rows
# beyond its first: queue_size places hold that many one-row requests or 16 times as many rows
# of batches, about 60 MB per worker at the default either way. (Counted in rows, the queue held
# ten 10,000-row requests, a quarter of a second of them: a writer held up a little longer by a
# checkpoint or a busy interpreter dropped records.)
ROWS_PER_PLACE = 16
# The writer packs for this long at most (plus one request), then lets go of the interpreter's
# lock for a moment. Packing holds the lock (about 5 µs a one-row request, 100-200 µs a batch of
# thousands), and a request waiting for it waits until the holder lets go, at most
# sys.getswitchinterval() (5 ms): packing a thousand one-row requests at once put that wait on
# about one request in a hundred at concurrency 1 (served p99 2.85 ms with the log on, 0.89 ms
# with it off; 1.53 ms with pauses every 64 requests, about this long).
PACK_HOLD = 0.0003
PACK_PAUSE = 0.0002  # seconds: long enough for a waiting thread to wake and take the lock


# The outputs slot of a queued Inference (record_inference): packed by .answered on the writer.
_INFERENCE = object()


def _answered_rows() -> Callable:
    """mldeploy.monitoring.answered's packer, imported on first use (it needs the answer's shape,
    from mldeploy.api) and kept: an import statement per request cost the writer about 1 µs."""
    global _packer
    if _packer is None:
        from mldeploy.monitoring.answered import answered_rows

        _packer = answered_rows
    return _packer


_packer: Callable | None = None


# Episodes that warn once at their start.
_OUTAGE, _FULL = "outage", "queue full"


def places(rows: int) -> int:
    """The places in the queue a request of ``rows`` rows takes (see :data:`ROWS_PER_PLACE`)."""
    return 1 + (rows - 1) // ROWS_PER_PLACE


def _seconds(value: float | timedelta | None) -> float | None:
    if value is None:
        return None
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if not seconds > 0:
        raise ValueError(f"max_age must be positive, got {value!r}")
    return seconds


def _at_least(name: str, value: float, low: float) -> None:
    if not value >= low:
        raise ValueError(f"{name} must be at least {low}, got {value!r}")


class PredictionLog:
    """Records answered predictions, off the request path, in SQLite or PostgreSQL.

    ``database`` is a SQLite file path or a ``postgresql://`` URL. ``sample_rate`` (0 to 1) keeps
    that share of requests, chosen by request id. Retention: rows older than ``max_age`` (seconds
    or a timedelta) and beyond the newest ``max_rows`` are deleted every ``prune_interval``
    seconds. The queue holds up to ``queue_size`` one-row requests, a request of n rows taking
    the place of ``1 + (n - 1) // 16`` (:data:`ROWS_PER_PLACE`: what a batch's rows take in memory);
    ``batch_size`` places taken wake the writer before its interval (``batch_size`` one-row
    requests, or 16 times as many rows of batches), and it inserts up to ``batch_size`` requests
    per transaction, at least every ``flush_interval`` seconds.

    Counters: ``written`` and ``dropped`` (with ``dropped_by_reason``, keyed by
    :data:`DROP_REASONS`), per process. ``on_written(rows)`` and ``on_dropped(rows, reason)``
    are called as they change (e.g. to increment Prometheus counters), from the writer's thread
    or the caller's.

    The writer thread starts with the first record, so a log made before a fork (gunicorn's
    preloading master) writes from each worker. Call :meth:`close` when the process ends (a
    gunicorn ``worker_exit`` hook); at interpreter exit, open logs are closed too.
    """

    def __init__(
        self,
        database: str | os.PathLike,
        *,
        model: str = DEFAULT_MODEL,
        sample_rate: float = 1.0,
        max_age: float | timedelta | None = None,
        max_rows: int | None = None,
        queue_size: int = QUEUE_SIZE,
        batch_size: int = BATCH_SIZE,
        flush_interval: float = FLUSH_INTERVAL,
        close_timeout: float = CLOSE_TIMEOUT,
        retry_interval: float = RETRY_INTERVAL,
        prune_interval: float = PRUNE_INTERVAL,
        on_written: Callable[[int], None] | None = None,
        on_dropped: Callable[[int, str], None] | None = None,
    ) -> None:
        if not 0.0 <= sample_rate <= 1.0:
            raise ValueError(f"sample_rate must be between 0 and 1, got {sample_rate!r}")
        for name, value, low in (
            ("queue_size", queue_size, 1),
            ("batch_size", batch_size, 1),
            ("max_rows", 1 if max_rows is None else max_rows, 1),
        ):
            _at_least(name, value, low)
        for name, value in (
            ("flush_interval", flush_interval),
            ("retry_interval", retry_interval),
            ("prune_interval", prune_interval),
        ):
            _at_least(name, value, 0.001)
        _at_least("close_timeout", close_timeout, 0.0)
        self.database = os.fspath(database)
        self.model = model
        self.sample_rate = float(sample_rate)
        self.max_age = _seconds(max_age)
        self.max_rows = max_rows
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.close_timeout = close_timeout
        self.retry_interval = retry_interval
        self.prune_interval = prune_interval
        self.on_written = on_written
        self.on_dropped = on_dropped
        self._init_state()
        _open_logs.add(self)

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)  # the writer waits here for work
        self._settled = threading.Condition(self._lock)  # flush() and close() wait here
        self._pending: list[tuple] = []
        self._pending_rows = 0
        self._pending_places = 0  # what the queue's bound counts (see ROWS_PER_PLACE)
        self._accepted_rows = 0  # queued since the start (flush() waits until all are settled)
        self._settled_rows = 0  # written or dropped after being queued
        self._flush_requested = False
        self._closing = False
        self._close_deadline = math.inf
        self._thread: threading.Thread | None = None
        self._store: Store | None = None
        self._episodes: set[str] = set()
        self._last_warned: dict[str, float] = {}
        self._next_prune = 0.0
        self.written = 0
        self.dropped = 0
        self.dropped_by_reason = dict.fromkeys(DROP_REASONS, 0)

    def __repr__(self) -> str:
        return f"PredictionLog({display_name(self.database)!r}, written={self.written}, dropped={self.dropped})"

    @property
    def queued(self) -> int:
        """Rows waiting for the writer."""
        return self._pending_rows

    # -- the caller's side --------------------------------------------------------------------

    def record(
        self, request_id: str, version: str, rows: Sequence[dict], outputs: Sequence[dict], *, model: str | None = None
    ) -> bool:
        """Queue one request's rows and their answers (``outputs[i]`` answers ``rows[i]``, row
        index ``i``); returns whether they were queued (False: not sampled, or dropped).

        Never blocks on the database and never raises. The log keeps references to ``rows`` and
        ``outputs`` until they are written: do not change them afterwards.
        """
        try:
            if len(rows) != len(outputs):
                if self.sample_rate >= 1.0 or sampled(request_id, self.sample_rate):
                    count = len(rows)
                    self._drop(count, INVALID, f"{count} rows but {len(outputs)} outputs for request {request_id!r}")
                return False
            return self._enqueue(request_id, version, model, len(rows), rows, outputs)
        except Exception as exc:  # e.g. rows without a length: never fail the prediction
            self._warn_now_and_then(INVALID, f"could not record request {request_id!r}: {exc!r}", exc_info=True)
        return False

    def record_inference(self, result: Inference, request_id: str | None = None, *, model: str | None = None) -> str:
        """Queue every row of ``result`` (a :class:`modeler.inference.Inference`) with the answer
        it gets, packed off the caller's thread (:mod:`.answered`); returns the request id the
        rows are logged under (``request_id``, else a new one). ``model`` names the model that
        answered (default: the log's). This is what a ``Modeler``'s ``prediction_log`` is called
        with, and the server's hook too."""
        if request_id is None:
            request_id = new_request_id()
        try:
            self._enqueue(request_id, result.version, model, len(result.answers), result, _INFERENCE)
        except Exception as exc:
            self._warn_now_and_then(INVALID, f"could not record request {request_id!r}: {exc!r}", exc_info=True)
        return request_id

    def _enqueue(
        self, request_id: str, version: str, model: str | None, count: int, rows: object, outputs: object
    ) -> bool:
        if self.sample_rate < 1.0 and not sampled(request_id, self.sample_rate):
            return False
        if not count:
            return False
        item = (request_id, version, self.model if model is None else model, time.time(), count, rows, outputs)
        with self._lock:
            if self._closing:
                reason = CLOSED
            # A batch larger than the whole queue still goes in when the queue is empty.
            elif self._pending_places and self._pending_places + places(count) > self.queue_size:
                reason = QUEUE_FULL
            else:
                if self._thread is None:
                    self._start_writer()
                before = self._pending_places
                self._pending.append(item)
                self._pending_rows += count
                self._pending_places = before + places(count)
                self._accepted_rows += count
                # Woken by places, not rows: each wake costs the worker far more than the rows it
                # writes (the writer takes the interpreter's lock from the threads answering
                # requests, and gives it back, several times a transaction). Woken at 1,000 rows,
                # a server answering 1,000-row batches woke it for every request: a Pipeline's
                # batches served at c=1 at 0.77x the rows per second of the pipeline called in
                # process, against 0.87x woken every 16 (63 places each), in the same runs.
                if before < self.batch_size <= self._pending_places:
                    self._wake.notify()
                return True
        self._drop(count, reason, "the queue is full" if reason == QUEUE_FULL else "the log is closed")
        return False

    def flush(self, timeout: float | None = None) -> bool:
        """Write everything queued so far; True when it is written (or dropped) within ``timeout``."""
        with self._lock:
            target = self._accepted_rows
            if self._thread is None:
                return True
            self._flush_requested = True
            self._wake.notify()
            return self._settled.wait_for(lambda: self._settled_rows >= target, timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Write what is queued, then stop the writer. Records after this are dropped (``closed``).

        While the database is unreachable, waits for it up to ``timeout`` (default
        ``close_timeout``) and then counts what is left as dropped (``database``). True when the
        writer finished (within ``timeout`` plus a second's grace).
        """
        timeout = self.close_timeout if timeout is None else timeout
        with self._lock:
            if not self._closing:
                self._closing = True
                self._close_deadline = time.monotonic() + timeout
                self._wake.notify()
            thread = self._thread
        _open_logs.discard(self)
        if thread is None or thread is threading.current_thread():
            return True
        # The writer gives up at the deadline; the grace lets it count the drops and stop.
        thread.join(timeout + CLOSE_GRACE)
        return not thread.is_alive()

    def __enter__(self) -> PredictionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def rows(
        self, since: datetime | None = None, version: str | None = None, model: str | None = None
    ) -> Iterator[LogRecord]:
        """What the database holds (every replica's rows), oldest first; call :meth:`flush`
        first to include this process's queue. Reads over a connection of its own."""
        store = open_store(self.database, create=False)
        try:
            yield from store.rows(since=since, version=version, model=model)
        finally:
            store.close()

    # -- counters and episodes ----------------------------------------------------------------

    def _drop(self, count: int, reason: str, why: str, settled: bool = False) -> None:
        with self._lock:
            self.dropped += count
            self.dropped_by_reason[reason] += count
            if settled:
                self._settle_locked(count)
            starts_episode = reason == QUEUE_FULL and _FULL not in self._episodes
            if starts_episode:
                self._episodes.add(_FULL)
        if starts_episode:
            log.warning("prediction log %s: %s: dropping records until the writer catches up", self._name, why)
        elif reason in (REJECTED, INVALID):
            self._warn_now_and_then(reason, f"dropped {count} record(s): {why}")
        self._call(self.on_dropped, count, reason)

    def _warn_now_and_then(self, kind: str, message: str, exc_info: bool = False) -> None:
        # A caller that keeps sending what cannot be logged would otherwise warn on every request.
        now = time.monotonic()
        if now - self._last_warned.get(kind, -math.inf) >= WARN_INTERVAL:
            self._last_warned[kind] = now
            log.warning(
                "prediction log %s: %s (more of these within %d s are only counted)",
                self._name,
                message,
                WARN_INTERVAL,
                exc_info=exc_info,
            )

    def _settle_locked(self, count: int) -> None:
        self._settled_rows += count
        self._settled.notify_all()

    def _call(self, callback: Callable | None, *args: object) -> None:
        if callback is not None:
            try:
                callback(*args)
            except Exception:
                log.exception("prediction log %s: counter callback %r failed", self._name, callback)

    @property
    def _name(self) -> str:
        return display_name(self.database)

    def _outage(self, exc: BaseException) -> None:
        if _OUTAGE not in self._episodes:
            self._episodes.add(_OUTAGE)
            log.warning(
                "prediction log %s: database unavailable (%s: %s); predictions go on, records wait "
                "in the queue and are dropped when it is full",
                self._name,
                type(exc).__name__,
                str(exc).strip() or "no message",
            )

    def _healthy(self) -> None:
        """After a successful write: an outage is over; a full queue is over once it has room."""
        if not self._episodes:
            return
        with self._lock:
            ended = self._episodes & {_OUTAGE}
            if _FULL in self._episodes and self._pending_places <= self.queue_size // 2:
                ended.add(_FULL)
            self._episodes -= ended
        if ended:
            log.warning(
                "prediction log %s: writing again (%s over); %d record(s) dropped by this process so far",
                self._name,
                " and ".join(sorted(ended)),
                self.dropped,
            )

    # -- the writer thread ----------------------------------------------------------------------

    def _start_writer(self) -> None:
        self._next_prune = time.monotonic() if self.max_age or self.max_rows else math.inf
        self._thread = threading.Thread(target=self._run, name="prediction-log-writer", daemon=True)
        self._thread.start()

    def _take(self) -> tuple[list[tuple], bool]:
        """Wait for a full batch (``batch_size`` places), a flush, close(), or the end of the
        flush interval; take the queue."""
        with self._lock:
            deadline = time.monotonic() + self.flush_interval
            while not (self._closing or self._flush_requested or self._pending_places >= self.batch_size):
                remaining = min(deadline, self._next_prune) - time.monotonic()
                if remaining <= 0:
                    break
                self._wake.wait(remaining)
            self._flush_requested = False
            items, self._pending, self._pending_rows, self._pending_places = self._pending, [], 0, 0
            return items, self._closing

    def _run(self) -> None:
        try:
            while True:
                items, closing = self._take()
                try:
                    if items:
                        self._write(items)
                    if time.monotonic() >= self._next_prune:
                        self._prune()
                except Exception:  # a bug of ours: say so, and keep the writer alive for what follows
                    log.exception("prediction log %s: the writer failed on a batch", self._name)
                if closing:  # close() stops new records under the same lock: nothing can follow
                    return
        finally:
            self._close_store()

    def _connect(self) -> Store:
        if self._store is None:
            self._store = open_store(self.database)
        return self._store

    def _close_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            store.close()

    def _encode(self, items: list[tuple]) -> list[Row]:
        """One packed row per request (:mod:`.packing`); a request that cannot be packed is
        dropped (``rejected``) without its batch."""
        rows: list[Row] = []
        pack = _answered_rows()
        pause_at = time.perf_counter() + PACK_HOLD
        for request_id, version, model, answered, count, inputs, outputs in items:
            if time.perf_counter() >= pause_at:
                time.sleep(PACK_PAUSE)
                pause_at = time.perf_counter() + PACK_HOLD
            try:
                if not (isinstance(request_id, str) and isinstance(version, str) and isinstance(model, str)):
                    raise TypeError("request id, version and model must be strings")
                # An Inference is packed here, off the caller's thread; rows and outputs as JSON.
                if outputs is _INFERENCE:
                    inputs, outputs = pack(inputs)
                else:
                    inputs, outputs = pack_json(list(inputs)), pack_json(list(outputs))
                rows.append((request_id, model, version, answered, count, inputs, outputs))
            except Exception as exc:  # a value that cannot be encoded: drop, count, go on
                self._drop(count, REJECTED, f"request {request_id!r}: {type(exc).__name__}: {exc}", settled=True)
        return rows

    def _write(self, items: list[tuple]) -> None:
        """Insert in transactions of up to ``batch_size`` requests (database rows): each
        transaction costs the writer a few waits for the interpreter's lock (held by the
        requests being answered), so a queue of big batches goes in a few transactions."""
        batch: list[Row] = []
        rows = 0
        for packed in self._encode(items):
            batch.append(packed)
            rows += packed[4]
            if len(batch) >= self.batch_size:
                self._write_batch(batch, rows)
                batch, rows = [], 0
        if batch:
            self._write_batch(batch, rows)

    def _write_batch(self, batch: list[Row], rows: int) -> None:
        """Insert ``batch`` (``rows`` answered rows), waiting out an outage (until close() has
        waited long enough)."""
        while True:
            store = None
            try:
                store = self._connect()
                store.insert(batch)
            except Exception as exc:
                # Failing to connect (or to create the tables) is an outage whatever the error.
                if store is not None and not store.is_unavailable(exc):
                    self._drop(rows, REJECTED, f"{type(exc).__name__}: {exc}", settled=True)
                    return
                if self._keep_trying(exc):
                    continue
                self._drop(rows, DATABASE, "the database stayed unavailable until close", settled=True)
                return
            self.written += rows
            with self._lock:
                self._settle_locked(rows)
            self._call(self.on_written, rows)
            self._healthy()
            return

    def _keep_trying(self, exc: BaseException) -> bool:
        """After a failure: warn (once per outage), drop the connection, wait ``retry_interval``;
        False once close() has waited long enough."""
        self._close_store()
        self._outage(exc)
        with self._lock:
            retry_at = time.monotonic() + self.retry_interval
            while True:
                now = time.monotonic()
                if self._closing and now >= self._close_deadline:
                    return False
                limit = min(retry_at, self._close_deadline)
                if now >= limit:
                    return True
                self._wake.wait(limit - now)

    def _prune(self) -> None:
        self._next_prune = time.monotonic() + self.prune_interval
        try:
            deleted = self._connect().prune(max_age=self.max_age, max_rows=self.max_rows, now=time.time())
        except Exception as exc:
            if self._store is None or self._store.is_unavailable(exc):
                self._close_store()
                self._outage(exc)
            else:
                log.warning("prediction log %s: retention failed: %s: %s", self._name, type(exc).__name__, exc)
            return
        if deleted:
            log.info("prediction log %s: retention deleted %d row(s)", self._name, deleted)

    def _after_fork(self) -> None:
        # The parent's writer thread does not exist here and its lock may have been held at the
        # fork: start afresh. The parent's queue is the parent's to write; its connection is
        # left untouched (closing it from here would close the parent's session too).
        if self._store is not None:
            _inherited_connections.append(self._store)
        self._init_state()


# Logs not yet closed: closed at interpreter exit, and made fresh in a forked child.
_open_logs: weakref.WeakSet[PredictionLog] = weakref.WeakSet()
_inherited_connections: list[Store] = []


def close_open_logs() -> None:
    """Close every log of this process not closed yet (draining each queue)."""
    for prediction_log in list(_open_logs):
        with contextlib.suppress(Exception):
            prediction_log.close()


def _reset_after_fork() -> None:
    for prediction_log in list(_open_logs):
        prediction_log._after_fork()


atexit.register(close_open_logs)
os.register_at_fork(after_in_child=_reset_after_fork)
