"""The prediction log's databases, SQLite (one file, WAL mode) and PostgreSQL, behind one small
interface: a :class:`Store` is one connection, used by one thread.

Schema (both backends; the SQL is written once, with the types each backend names differently):

- ``predictions``: one row per answered request: ``request_id`` (the primary key: a request
  written twice, a retried batch, keeps one), ``model``, ``version``, ``time`` (when it was
  answered), ``rows`` (how many rows it answered), ``inputs`` and ``outputs``, each request's rows
  packed into one value (:mod:`.packing`: raw numeric arrays, answer-table entries, or JSON).
  One row per request rather than per answered row: a 10,000-row batch is one insert of two
  values, which is what lets the log keep up with the batches a worker answers. Reads give one
  :class:`LogRecord` per answered row all the same. Indexes ``(model, version, time DESC)``
  ("this version, newest first") and ``(time)`` (time windows, retention, export).
- ``feedback``: ground truth for a row, ``(request_id, row_index)``, ``actual`` (JSON), ``time``;
  one per row (a later one replaces it). Written by a later issue's ``POST /feedback``; indexed by
  time. Retention by age applies to it too.

SQLite stores ``time`` as Unix seconds (REAL), PostgreSQL as ``timestamptz``; both read back as
UTC datetimes. The packed values are ``BLOB`` / ``bytea``; in PostgreSQL compressed with lz4
(else stored uncompressed), never with its default pglz, and written by one binary ``COPY`` per
batch.

Reading: :meth:`Store.rows` (a time window, a version, a model; oldest first, a page at a time),
:meth:`Store.latest` (the last N answered rows), :meth:`Store.request_rows` (one request's rows by
its ``X-Request-ID``), :meth:`Store.count` (answered rows held).
"""

from __future__ import annotations

import abc
import contextlib
import os
import sqlite3
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from mldeploy.monitoring.packing import unpack_inputs, unpack_outputs
from mldeploy.monitoring.records import LogRecord

# The default database: one SQLite file in the model directory.
DEFAULT_FILE = "predictions.sqlite3"
POSTGRES_SCHEMES = ("postgresql", "postgres")
# SQLite waits this long for another process's write lock before giving up (several gunicorn
# workers share one file; a write transaction holds the lock for milliseconds).
BUSY_TIMEOUT = 10.0
# PostgreSQL: how long connecting may take before the database counts as unreachable.
CONNECT_TIMEOUT = 5
# Every schema change in PostgreSQL runs under this advisory lock, so replicas starting together
# do not race on CREATE ... IF NOT EXISTS (which is not atomic there).
_SCHEMA_LOCK = 0x6D6C_6465_706C  # "mldepl"

# A request as the writer hands it to insert(): request_id, model, version, time (Unix seconds),
# rows (how many), inputs and outputs (packed by mldeploy.monitoring.packing).
Row = tuple[str, str, str, float, int, bytes, bytes]


class LogDatabaseError(Exception):
    """The prediction log's database cannot be opened or read (the message names the database,
    without its password, and why)."""


@dataclass(frozen=True)
class Dialect:
    """What differs between the backends' SQL."""

    param: str  # placeholder
    blob_param: str  # placeholder of a packed value (PostgreSQL: sent in binary, not hex-escaped)
    time_type: str
    json_type: str
    blob_type: str


SCHEMA = (
    """CREATE TABLE IF NOT EXISTS predictions (
        request_id TEXT NOT NULL PRIMARY KEY,
        model TEXT NOT NULL,
        version TEXT NOT NULL,
        time {time} NOT NULL,
        rows INTEGER NOT NULL,
        inputs {blob} NOT NULL,
        outputs {blob} NOT NULL)""",
    # In arrival order, so that each new row lands at the right-hand end of its (model, version)
    # run, the case both databases' B-trees make cheap; readers scan it backwards for the newest
    # first. Its first form (RETIRED_INDEXES) sorted time DESC, which put each new row at the
    # left of its run: a third of every insert's cost (33,000 against 25,000 instructions a
    # one-row request in SQLite, callgrind).
    "CREATE INDEX IF NOT EXISTS predictions_by_model_version ON predictions (model, version, time)",
    "CREATE INDEX IF NOT EXISTS predictions_by_time ON predictions (time)",
    """CREATE TABLE IF NOT EXISTS feedback (
        request_id TEXT NOT NULL,
        row_index INTEGER NOT NULL,
        actual {json} NOT NULL,
        time {time} NOT NULL,
        PRIMARY KEY (request_id, row_index))""",
    "CREATE INDEX IF NOT EXISTS feedback_by_time ON feedback (time)",
)
# Indexes of earlier schemas, dropped when a database is opened for writing (after their
# replacements exist, so that readers always have one).
RETIRED_INDEXES = ("predictions_by_version",)
# The columns of a Row, in its order.
ROW_COLUMNS = "request_id, model, version, time, rows, inputs, outputs"
ROW_PARAMS = 7
# ``{values}``: as many rows of parameters as the statement inserts (see Store._sql).
INSERT = f"INSERT INTO predictions ({ROW_COLUMNS}) VALUES {{values}} ON CONFLICT (request_id) DO NOTHING"
INSERT_VALUES = "({p}, {p}, {p}, {p}, {p}, {b}, {b})"
# PostgreSQL writes a batch with one binary COPY (one statement, however many requests: no
# statement per request to parse and execute); COPY has no ON CONFLICT, so a batch it refuses
# for a request already present goes in again by INSERT (the rare retry of a batch).
COPY = f"COPY predictions ({ROW_COLUMNS}) FROM STDIN (FORMAT BINARY)"
COPY_TYPES = ("text", "text", "text", "timestamptz", "int4", "bytea", "bytea")
# The packed values' columns in PostgreSQL: compressed with lz4 where the server has it (its
# default, pglz, cost the server about 10 ms of CPU per 10,000-row request, more than answering
# it; lz4 about 2 ms), else stored uncompressed out of line (STORAGE EXTERNAL: about as cheap,
# twice the disk). Either applies to rows written from then on.
PACKED_COLUMNS = ("inputs", "outputs")
LZ4 = "l"  # pg_attribute.attcompression
EXTERNAL = "e"  # pg_attribute.attstorage
LZ4_SINCE = 140000  # server_version_num of the first server with column compression methods
SELECT = f"SELECT {ROW_COLUMNS} FROM predictions"
# Keyset order: time, then the key, so that pages never skip or repeat a request.
ORDER = "time, request_id"
NEWEST_FIRST = "time DESC, request_id DESC"
PRUNE_PREDICTIONS_BY_AGE = "DELETE FROM predictions WHERE time < {p}"
PRUNE_FEEDBACK_BY_AGE = "DELETE FROM feedback WHERE time < {p}"
# The newest request whose rows, added to those of every newer request, pass the limit: it and
# everything older goes (whole requests, so at most max_rows rows stay).
PRUNE_PREDICTIONS_BY_ROWS = (
    "DELETE FROM predictions WHERE (time, request_id) <= (SELECT time, request_id FROM "
    "(SELECT time, request_id, SUM(rows) OVER (ORDER BY time DESC, request_id DESC ROWS UNBOUNDED PRECEDING) "
    "AS kept FROM predictions) AS newest WHERE kept > {p} ORDER BY time DESC, request_id DESC LIMIT 1)"
)
# Requests read per query (keyset pages: no cursor is held open between pages).
PAGE_REQUESTS = 1_000


def is_postgres(target: str) -> bool:
    """Whether ``target`` is a PostgreSQL URL (``postgresql://...``) rather than a file path."""
    return urlsplit(str(target)).scheme.lower() in POSTGRES_SCHEMES


def display_name(target: str | os.PathLike) -> str:
    """``target`` fit for a log line or an error: a URL's password replaced by ``***``."""
    text = str(target)
    if not is_postgres(text):
        return text
    parts = urlsplit(text)
    if parts.password is None:
        return text
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


def open_store(target: str | os.PathLike, *, create: bool = True) -> Store:
    """A connected store for ``target``: a ``postgresql://`` URL, else a SQLite file path.

    ``create`` makes the file (SQLite) and the tables when missing. Raises
    :class:`LogDatabaseError` when the database cannot be opened (or, without ``create``, the
    SQLite file does not exist), ValueError for a URL of another kind.
    """
    text = os.fspath(target)
    if is_postgres(text):
        store: Store = PostgresStore(text)
    elif "://" in text:
        raise ValueError(f"unsupported prediction log database {display_name(text)!r}: a file path or postgresql://")
    else:
        store = SQLiteStore(text)
    with store.translated_errors("open"):
        store.open(create=create)
    return store


class Store(abc.ABC):
    """One connection to a prediction log database. Not thread-safe: one thread uses it."""

    dialect: ClassVar[Dialect]

    def __init__(self, target: str) -> None:
        self.target = target
        self._conn: Any = None

    @property
    def name(self) -> str:
        """The database, fit for a log line (no password)."""
        return display_name(self.target)

    def _sql(self, template: str, values: int = 1) -> str:
        """``template`` in this backend's SQL; ``{values}``: ``values`` rows of INSERT_VALUES."""
        d = self.dialect
        kinds = {"p": d.param, "b": d.blob_param, "time": d.time_type, "json": d.json_type, "blob": d.blob_type}
        return template.format(values=", ".join([INSERT_VALUES.format(**kinds)] * values), **kinds)

    @abc.abstractmethod
    def _connect(self, create: bool) -> Any:
        """A new DB-API connection in autocommit mode (transactions are explicit)."""

    @abc.abstractmethod
    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        """A block that commits at its end, or rolls back on an exception."""

    @abc.abstractmethod
    def _time_param(self, seconds: float) -> Any:
        """Unix seconds as this backend's ``time`` value."""

    @abc.abstractmethod
    def _time_value(self, raw: Any) -> datetime:
        """A ``time`` value read back, as a UTC datetime."""

    @classmethod
    @abc.abstractmethod
    def driver_errors(cls) -> tuple[type[BaseException], ...]:
        """The errors this backend's driver raises (and OSError, for files and sockets)."""

    @contextlib.contextmanager
    def translated_errors(self, doing: str) -> Iterator[None]:
        """Driver errors inside the block become :class:`LogDatabaseError` naming the database."""
        try:
            yield
        except self.driver_errors() as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise LogDatabaseError(f"cannot {doing} the prediction log {self.name}: {reason}") from exc

    @classmethod
    @abc.abstractmethod
    def is_unavailable(cls, exc: BaseException) -> bool:
        """Whether ``exc`` means the database cannot be reached or written now (worth retrying),
        rather than that this batch itself was refused."""

    def _create_schema(self, cursor: Any) -> None:
        for statement in SCHEMA:
            cursor.execute(self._sql(statement))
        for name in RETIRED_INDEXES:
            if self._has_index(cursor, name):
                cursor.execute(f"DROP INDEX {name}")

    @abc.abstractmethod
    def _has_index(self, cursor: Any, name: str) -> bool:
        """Whether the database has an index called ``name``."""

    def open(self, create: bool = True) -> Store:
        """Connect; with ``create``, make the tables and indexes when missing."""
        self._conn = self._connect(create)
        if create:
            try:
                with self._transaction(), contextlib.closing(self._conn.cursor()) as cursor:
                    self._create_schema(cursor)
            except BaseException:
                self.close()
                raise
        return self

    def close(self) -> None:
        """Close the connection (idempotent; errors are ignored, the connection is gone anyway)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()

    def insert(self, rows: Sequence[Row]) -> None:
        """Write ``rows`` (one per request) in one transaction; a request already present (same
        id) is left as it is."""
        with self._transaction(), contextlib.closing(self._conn.cursor()) as cursor:
            cursor.executemany(self._sql(INSERT), self._params(rows))

    def _params(self, rows: Sequence[Row]) -> list[tuple]:
        return [(r[0], r[1], r[2], self._time_param(r[3]), r[4], r[5], r[6]) for r in rows]

    def prune(self, *, max_age: float | None = None, max_rows: int | None = None, now: float) -> int:
        """Delete predictions (and feedback) older than ``max_age`` seconds before ``now``, then
        the oldest requests until at most ``max_rows`` answered rows stay; returns how many
        requests went."""
        deleted = 0
        with self._transaction(), contextlib.closing(self._conn.cursor()) as cursor:
            if max_age is not None:
                cutoff = self._time_param(now - max_age)
                cursor.execute(self._sql(PRUNE_PREDICTIONS_BY_AGE), (cutoff,))
                deleted += max(cursor.rowcount, 0)
                cursor.execute(self._sql(PRUNE_FEEDBACK_BY_AGE), (cutoff,))
            if max_rows is not None:
                cursor.execute(self._sql(PRUNE_PREDICTIONS_BY_ROWS), (max_rows,))
                deleted += max(cursor.rowcount, 0)
        return deleted

    def count(self) -> int:
        """How many answered rows the log holds."""
        with contextlib.closing(self._conn.cursor()) as cursor:
            cursor.execute("SELECT COALESCE(SUM(rows), 0) FROM predictions")
            return int(cursor.fetchone()[0])

    # -- SQL of the monitoring modules (feedback, performance, drift) -----------------------------
    # Templates name placeholders ``{p}`` and the backend's types ``{time}``/``{json}``/``{blob}``;
    # a JSON column is read as text through :meth:`json_text`.

    def json_text(self, column: str) -> str:
        """An expression that reads the JSON ``column`` as text, in this backend's SQL."""
        return column

    def time_param(self, seconds: float) -> Any:
        """Unix seconds as this backend's ``time`` value (a query parameter)."""
        return self._time_param(seconds)

    def time_value(self, raw: Any) -> datetime:
        """A ``time`` value read back, as a UTC datetime."""
        return self._time_value(raw)

    def query(self, template: str, params: Sequence[Any] = ()) -> list[tuple]:
        """Every row of one SELECT; driver errors become :class:`LogDatabaseError`."""
        with self.translated_errors("read"), contextlib.closing(self._conn.cursor()) as cursor:
            cursor.execute(self._sql(template), tuple(params))
            return cursor.fetchall()

    def write_many(self, template: str, params: Sequence[Sequence[Any]]) -> None:
        """One statement for each parameter tuple, in one transaction."""
        with self.translated_errors("write"), self._transaction(), contextlib.closing(self._conn.cursor()) as cursor:
            cursor.executemany(self._sql(template), [tuple(p) for p in params])

    @abc.abstractmethod
    def snapshot(self) -> contextlib.AbstractContextManager[None]:
        """A block whose reads all see the database as it was at its first read (an export reads
        twice: the columns first, then the rows)."""

    def _requests(self, filters: Sequence[str], params: Sequence[object], order: str, after: str) -> Iterator[tuple]:
        """Requests matching every SQL clause of ``filters``, in ``order``, a page at a time;
        ``after`` is the keyset clause that starts the next page after a page's last request."""
        last: tuple | None = None
        while True:
            where = [*filters, after] if last else list(filters)
            sql = SELECT + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY {order} LIMIT {{p}}"
            with self.translated_errors("read"), contextlib.closing(self._conn.cursor()) as cursor:
                cursor.execute(self._sql(sql), (*params, *(last or ()), PAGE_REQUESTS))
                page = cursor.fetchall()
            yield from page
            if len(page) < PAGE_REQUESTS:
                return
            last = (page[-1][3], page[-1][0])

    def _records(self, found: Sequence[Any]) -> list[LogRecord]:
        """A request as read by SELECT, as one LogRecord per answered row."""
        request_id, model, version, raw_time, _rows, inputs, outputs = found
        answered = self._time_value(raw_time)
        return [
            LogRecord(request_id, row, model, version, answered, row_inputs, row_outputs)
            for row, (row_inputs, row_outputs) in enumerate(
                zip(unpack_inputs(inputs), unpack_outputs(outputs), strict=True)
            )
        ]

    def _filters(self, **selection: object) -> tuple[list[str], list[object]]:
        filters, params = [], []
        for column, value in selection.items():
            if value is not None:
                filters.append(f"{column} = {{p}}")
                params.append(value)
        return filters, params

    def rows(
        self, since: datetime | None = None, version: str | None = None, model: str | None = None
    ) -> Iterator[LogRecord]:
        """The rows answered at or after ``since`` (of ``version`` and ``model`` when given),
        oldest first, read a page at a time."""
        filters, params = self._filters(version=version, model=model)
        if since is not None:
            filters.append("time >= {p}")
            params.append(self._time_param(since.timestamp()))
        for found in self._requests(filters, params, ORDER, "(time, request_id) > ({p}, {p})"):
            yield from self._records(found)

    def latest(self, limit: int, *, version: str | None = None, model: str | None = None) -> list[LogRecord]:
        """The newest ``limit`` answered rows (of ``version`` and ``model`` when given), oldest
        first: the window "the last N predictions"."""
        filters, params = self._filters(version=version, model=model)
        newest: list[list[LogRecord]] = []
        held = 0
        if limit > 0:
            for found in self._requests(filters, params, NEWEST_FIRST, "(time, request_id) < ({p}, {p})"):
                newest.append(self._records(found))
                held += found[4]
                if held >= limit:
                    break
        records = [record for request in reversed(newest) for record in request]
        return records[max(len(records) - limit, 0) :]

    def request_rows(self, request_id: str, row: int | None = None) -> list[LogRecord]:
        """The logged rows of one request (by its ``X-Request-ID``), in row order; only row
        ``row`` when given. Empty when the request was not logged (unknown, not sampled, pruned)."""
        with self.translated_errors("read"), contextlib.closing(self._conn.cursor()) as cursor:
            cursor.execute(self._sql(SELECT + " WHERE request_id = {p}"), (request_id,))
            found = cursor.fetchone()
        records = self._records(found) if found else []
        if row is not None:
            records = [r for r in records if r.row == row]
        return records


def _alter_columns(action: str) -> str:
    return "ALTER TABLE predictions " + ", ".join(f"ALTER COLUMN {c} {action}" for c in PACKED_COLUMNS)


# The page size of a new SQLite log (an existing file keeps its own).
PAGE_SIZE = 32768
# The INSERT of n requests, by n (a power of two: at most about 13 of them).
_SQLITE_INSERTS: dict[int, str] = {}


# Packed values shorter than this are bound as a bytearray (see _flat_params): copying one costs
# less than the module's search for an adapter for bytes, up to about this size.
SMALL_BLOB = 65536


def _flat_params(rows: Sequence[Row]) -> list:
    """The parameters of one INSERT of ``rows``, in order. The module binds str, int, float and
    bytearray as they are but looks for an adapter for any other type, bytes too (two failed
    attribute look-ups: callgrind counted 3,300 instructions a value, two values a request), so a
    small packed value goes as a bytearray copy: a BLOB all the same, read back as bytes."""
    flat: list = []
    extend = flat.extend
    for request_id, model, version, answered, count, inputs, outputs in rows:
        if len(inputs) < SMALL_BLOB:
            inputs = bytearray(inputs)
        if len(outputs) < SMALL_BLOB:
            outputs = bytearray(outputs)
        extend((request_id, model, version, answered, count, inputs, outputs))
    return flat


def statement_sizes(count: int, limit: int) -> list[int]:
    """``count`` rows as statements of power-of-two sizes, none above ``limit``, largest first:
    at most log2(limit) + 1 distinct statements, each parsed once per connection and then taken
    from the module's statement cache (128 statements by default)."""
    sizes = []
    step = 1 << (max(1, limit).bit_length() - 1)
    while count > 0:
        while step > count:
            step >>= 1
        sizes.append(step)
        count -= step
    return sizes


class SQLiteStore(Store):
    """A SQLite file in WAL mode: readers never wait for the writer, and each process's writer
    takes the file's write lock for one short transaction per batch."""

    dialect = Dialect(param="?", blob_param="?", time_type="REAL", json_type="TEXT", blob_type="BLOB")

    def _has_index(self, cursor: Any, name: str) -> bool:
        cursor.execute("SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?", (name,))
        return cursor.fetchone() is not None

    def _connect(self, create: bool) -> sqlite3.Connection:
        path = Path(self.target)
        if not create and not path.is_file():
            raise FileNotFoundError("no such file (nothing has been logged there yet)")
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=True)
        try:
            if create:
                # Before anything is written (a file's page size is fixed once it has content, and
                # in WAL mode for good): a 10,000-row batch's packed inputs (320 KB) span 80
                # overflow pages of the default 4 KB, and SQLite's cost per page made the insert
                # 1.7 ms of CPU; at 32 KB it is 0.9 ms, and small rows cost less too.
                conn.execute(f"PRAGMA page_size={PAGE_SIZE}")
                # WAL is a property of the file: set once, every later connection uses it.
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise sqlite3.OperationalError(f"cannot switch {path} to WAL mode (journal mode {mode})")
            # NORMAL is durable across a crash of the process in WAL mode; only a power cut can
            # lose the last transactions, and one fsync per batch is saved.
            conn.execute("PRAGMA synchronous=NORMAL")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        # IMMEDIATE takes the write lock at BEGIN, so a busy file waits there (busy timeout)
        # instead of failing mid-transaction with SQLITE_BUSY on a lock upgrade.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def insert(self, rows: Sequence[Row]) -> None:
        # Few statements, each of many rows: the module gives up the interpreter's lock around
        # each statement it runs, and while requests are being answered each time it waits to get
        # it back (about 5 ms, sys.getswitchinterval), so one statement per request cost the
        # writer more waiting than writing. Their sizes are powers of two (statement_sizes): a
        # statement of any other size was parsed anew for each batch, which cost more than
        # executing it (callgrind: 14,600 instructions a request to parse, 8,700 to execute).
        # Several statements run in one transaction, one runs in autocommit (atomic by itself).
        limit = self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // ROW_PARAMS
        sizes = statement_sizes(len(rows), limit)
        transaction = self._transaction() if len(sizes) > 1 else contextlib.nullcontext()
        start = 0
        with transaction:
            for size in sizes:
                chunk = rows[start : start + size]
                start += size
                self._conn.execute(self._insert_sql(size), _flat_params(chunk))

    def _insert_sql(self, size: int) -> str:
        # The same str object each time: the module's statement cache hashes it once.
        found = _SQLITE_INSERTS.get(size)
        if found is None:
            found = _SQLITE_INSERTS[size] = self._sql(INSERT, size)
        return found

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        # A deferred transaction: a read snapshot that takes no write lock.
        with self.translated_errors("read"):
            self._conn.execute("BEGIN")
        try:
            yield
        finally:
            self._conn.execute("COMMIT")

    @classmethod
    def driver_errors(cls) -> tuple[type[BaseException], ...]:
        return (sqlite3.Error, OSError)

    def _time_param(self, seconds: float) -> float:
        return seconds

    def _time_value(self, raw: float) -> datetime:
        return datetime.fromtimestamp(raw, UTC)

    @classmethod
    def is_unavailable(cls, exc: BaseException) -> bool:
        # OperationalError: locked past the busy timeout, read-only, cannot open, disk full, I/O;
        # a bare DatabaseError: the file is not a database. None goes away by trying the batch again
        # elsewhere, and all of them may go away with time.
        return isinstance(exc, sqlite3.OperationalError | OSError) or type(exc) is sqlite3.DatabaseError


class PostgresStore(Store):
    """A PostgreSQL database, shared by every worker and replica (psycopg 3)."""

    dialect = Dialect(param="%s", blob_param="%b", time_type="TIMESTAMPTZ", json_type="JSON", blob_type="BYTEA")

    def _connect(self, create: bool) -> Any:
        import psycopg  # only when a PostgreSQL log is configured

        return psycopg.connect(
            self.target, autocommit=True, connect_timeout=CONNECT_TIMEOUT, application_name="mldeploy-prediction-log"
        )

    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        return self._conn.transaction()

    def json_text(self, column: str) -> str:
        return f"{column}::text"  # psycopg would parse a json column itself

    def _create_schema(self, cursor: Any) -> None:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        super()._create_schema(cursor)
        self._store_packed_cheaply(cursor)

    def _has_index(self, cursor: Any, name: str) -> bool:
        # Asked first rather than DROP INDEX IF EXISTS, whose notice when there is none would
        # reach the log on every start.
        cursor.execute("SELECT to_regclass(%s)", (name,))
        return cursor.fetchone()[0] is not None

    def _store_packed_cheaply(self, cursor: Any) -> None:
        """lz4 (else no compression) for the packed columns, set once: ALTER TABLE locks the
        table, so it runs only while a column still has another setting."""
        import psycopg

        lz4 = self._conn.info.server_version >= LZ4_SINCE
        compression = "attcompression" if lz4 else "''"
        cursor.execute(
            f"SELECT attname, {compression}, attstorage FROM pg_attribute "
            "WHERE attrelid = 'predictions'::regclass AND attname = ANY(%s)",
            (list(PACKED_COLUMNS),),
        )
        settings = {name: (method, storage) for name, method, storage in cursor.fetchall()}
        if lz4:
            if all(settings[c][0] == LZ4 for c in PACKED_COLUMNS):
                return
            try:
                with self._conn.transaction():  # a savepoint: a server without lz4 refuses it
                    cursor.execute(_alter_columns("SET COMPRESSION lz4"))
                return
            except psycopg.errors.FeatureNotSupported:
                pass  # built without lz4: store the values uncompressed
        if not all(settings[c][1] == EXTERNAL for c in PACKED_COLUMNS):
            cursor.execute(_alter_columns("SET STORAGE EXTERNAL"))

    def insert(self, rows: Sequence[Row]) -> None:
        import psycopg

        # One COPY in autocommit (a statement is atomic by itself): no BEGIN and COMMIT to wait
        # for, each a round trip during which the interpreter's lock is given up and waited for.
        try:
            with self._conn.cursor() as cursor, cursor.copy(COPY) as copy:
                copy.set_types(COPY_TYPES)
                for param in self._params(rows):
                    copy.write_row(param)
        except psycopg.errors.UniqueViolation:
            # A request already there (a batch written again after a commit it could not
            # confirm): the INSERT keeps the first copy and writes the others.
            super().insert(rows)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        with self.translated_errors("read"), self._conn.transaction():
            self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield

    @classmethod
    def driver_errors(cls) -> tuple[type[BaseException], ...]:
        import psycopg

        return (psycopg.Error, OSError)

    def _time_param(self, seconds: float) -> datetime:
        return datetime.fromtimestamp(seconds, UTC)

    def _time_value(self, raw: datetime) -> datetime:
        return raw.astimezone(UTC)

    @classmethod
    def is_unavailable(cls, exc: BaseException) -> bool:
        import psycopg

        # OperationalError: refused, reset, server shutting down, too many connections;
        # InterfaceError: the connection is already closed.
        return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError | OSError)
