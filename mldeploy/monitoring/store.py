"""The prediction log's databases, SQLite (one file, WAL mode) and PostgreSQL, behind one small
interface: a :class:`Store` is one connection, used by one thread.

Schema (both backends; the SQL is written once, with the types each backend names differently):

- ``predictions``: ``request_id``, ``row_index`` (0-based, within the request), ``model``,
  ``version``, ``time`` (when it was answered), ``inputs`` and ``outputs`` as JSON text; primary
  key ``(request_id, row_index)``, so writing a row twice (a retried batch) keeps one. Indexes
  ``(model, version, time DESC)`` ("this version, newest first") and ``(time)`` (time windows,
  retention, export).
- ``feedback``: ground truth for a row, ``(request_id, row_index)``, ``actual`` (JSON), ``time``;
  one per row (a later one replaces it). Written by a later issue's ``POST /feedback``; indexed by
  time. Retention by age applies to it too.

SQLite stores ``time`` as Unix seconds (REAL), PostgreSQL as ``timestamptz``; both read back as
UTC datetimes. PostgreSQL's column type is ``json``, not ``jsonb``: it keeps the text as written,
so the fields keep the model's order (an export lists them in feature order); analysis windows
read few enough rows that jsonb's faster operators would not matter.
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

import orjson

from mldeploy.monitoring.records import LogRecord

# The default database: one SQLite file in the model directory.
DEFAULT_FILE = "predictions.sqlite3"
POSTGRES_SCHEMES = ("postgresql", "postgres")
# SQLite waits this long for another process's write lock before giving up (several gunicorn
# workers share one file; a write transaction holds the lock for milliseconds).
BUSY_TIMEOUT = 10.0
# PostgreSQL: how long connecting may take before the database counts as unreachable.
CONNECT_TIMEOUT = 5
# Rows fetched per query when reading (keyset pages: no cursor is held open between pages).
PAGE_ROWS = 10_000
# Every schema change in PostgreSQL runs under this advisory lock, so replicas starting together
# do not race on CREATE ... IF NOT EXISTS (which is not atomic there).
_SCHEMA_LOCK = 0x6D6C_6465_706C  # "mldepl"

# A row as the writer hands it to insert(): request_id, row_index, model, version,
# time (Unix seconds), inputs (JSON text), outputs (JSON text).
Row = tuple[str, int, str, str, float, str, str]


class LogDatabaseError(Exception):
    """The prediction log's database cannot be opened or read (the message names the database,
    without its password, and why)."""


@dataclass(frozen=True)
class Dialect:
    """What differs between the backends' SQL."""

    param: str  # placeholder
    time_type: str
    json_type: str
    json_as_text: str  # "{}" -> an expression that reads a JSON column as text


SCHEMA = (
    """CREATE TABLE IF NOT EXISTS predictions (
        request_id TEXT NOT NULL,
        row_index INTEGER NOT NULL,
        model TEXT NOT NULL,
        version TEXT NOT NULL,
        time {time} NOT NULL,
        inputs {json} NOT NULL,
        outputs {json} NOT NULL,
        PRIMARY KEY (request_id, row_index))""",
    "CREATE INDEX IF NOT EXISTS predictions_by_version ON predictions (model, version, time DESC)",
    "CREATE INDEX IF NOT EXISTS predictions_by_time ON predictions (time)",
    """CREATE TABLE IF NOT EXISTS feedback (
        request_id TEXT NOT NULL,
        row_index INTEGER NOT NULL,
        actual {json} NOT NULL,
        time {time} NOT NULL,
        PRIMARY KEY (request_id, row_index))""",
    "CREATE INDEX IF NOT EXISTS feedback_by_time ON feedback (time)",
)
INSERT = (
    "INSERT INTO predictions (request_id, row_index, model, version, time, inputs, outputs) "
    "VALUES ({p}, {p}, {p}, {p}, {p}, {p}, {p}) ON CONFLICT (request_id, row_index) DO NOTHING"
)
# Keyset order: time, then the key, so that pages never skip or repeat a row.
ORDER = "time, request_id, row_index"
PRUNE_PREDICTIONS_BY_AGE = "DELETE FROM predictions WHERE time < {p}"
PRUNE_FEEDBACK_BY_AGE = "DELETE FROM feedback WHERE time < {p}"
PRUNE_PREDICTIONS_BY_ROWS = (
    "DELETE FROM predictions WHERE (time, request_id, row_index) <= (SELECT time, request_id, row_index "
    "FROM predictions ORDER BY time DESC, request_id DESC, row_index DESC LIMIT 1 OFFSET {p})"
)


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

    def _sql(self, template: str) -> str:
        d = self.dialect
        return template.format(p=d.param, time=d.time_type, json=d.json_type)

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
        """Write ``rows`` in one transaction; rows already present (same key) are left as they are."""
        params = [(r[0], r[1], r[2], r[3], self._time_param(r[4]), r[5], r[6]) for r in rows]
        with self._transaction(), contextlib.closing(self._conn.cursor()) as cursor:
            cursor.executemany(self._sql(INSERT), params)

    def prune(self, *, max_age: float | None = None, max_rows: int | None = None, now: float) -> int:
        """Delete predictions (and feedback) older than ``max_age`` seconds before ``now``, then
        predictions beyond the newest ``max_rows``; returns how many predictions went."""
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
        """How many predictions the log holds."""
        with contextlib.closing(self._conn.cursor()) as cursor:
            cursor.execute("SELECT count(*) FROM predictions")
            return int(cursor.fetchone()[0])

    # -- SQL of the monitoring modules (feedback, performance, drift) -----------------------------
    # Templates name placeholders ``{p}`` and the backend's types ``{time}``/``{json}``; a JSON
    # column is read as text through :meth:`json_text`.

    def json_text(self, column: str) -> str:
        """An expression that reads the JSON ``column`` as text, in this backend's SQL."""
        return self.dialect.json_as_text.format(column)

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

    def rows(
        self,
        since: datetime | None = None,
        version: str | None = None,
        model: str | None = None,
        page_rows: int = PAGE_ROWS,
    ) -> Iterator[LogRecord]:
        """The predictions answered at or after ``since`` (of ``version`` and ``model`` when
        given), oldest first, read a page at a time."""
        filters, params = [], []
        for clause, value in (
            ("time >= {p}", None if since is None else self._time_param(since.timestamp())),
            ("version = {p}", version),
            ("model = {p}", model),
        ):
            if value is not None:
                filters.append(clause)
                params.append(value)
        text = self.dialect.json_as_text
        select = (
            f"SELECT request_id, row_index, model, version, time, {text.format('inputs')}, {text.format('outputs')} "
            "FROM predictions"
        )
        after: tuple | None = None
        while True:
            where = [*filters, "(time, request_id, row_index) > ({p}, {p}, {p})"] if after else filters
            sql = select + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY {ORDER} LIMIT {{p}}"
            with self.translated_errors("read"), contextlib.closing(self._conn.cursor()) as cursor:
                cursor.execute(self._sql(sql), (*params, *(after or ()), page_rows))
                page = cursor.fetchall()
            for found in page:
                yield self._record(found)
            if len(page) < page_rows:
                return
            after = (page[-1][4], page[-1][0], page[-1][1])

    def _select(self, where: str, params: Sequence[object], order: str, limit: int | None = None) -> list[LogRecord]:
        """Rows matching ``where`` (SQL with ``{p}`` placeholders), in ``order``, at most ``limit``."""
        text = self.dialect.json_as_text
        sql = (
            f"SELECT request_id, row_index, model, version, time, {text.format('inputs')}, {text.format('outputs')} "
            f"FROM predictions{' WHERE ' + where if where else ''} ORDER BY {order}"
        )
        if limit is not None:
            sql += " LIMIT {p}"
            params = (*params, limit)
        with self.translated_errors("read"), contextlib.closing(self._conn.cursor()) as cursor:
            cursor.execute(self._sql(sql), tuple(params))
            page = cursor.fetchall()
        return [self._record(found) for found in page]

    def _record(self, found: Sequence[Any]) -> LogRecord:
        """A row read by a SELECT of the predictions' columns in schema order, as a LogRecord."""
        request_id, row, model, version, raw_time, inputs, outputs = found
        return LogRecord(
            request_id, row, model, version, self._time_value(raw_time), orjson.loads(inputs), orjson.loads(outputs)
        )

    def request_rows(self, request_id: str, row: int | None = None) -> list[LogRecord]:
        """The logged rows of one request (by its ``X-Request-ID``), in row order; only row
        ``row`` when given. Empty when the request was not logged (unknown, not sampled, pruned)."""
        if row is None:
            return self._select("request_id = {p}", (request_id,), "row_index")
        return self._select("request_id = {p} AND row_index = {p}", (request_id, row), "row_index")

    def latest(self, limit: int, *, version: str | None = None, model: str | None = None) -> list[LogRecord]:
        """The newest ``limit`` rows (of ``version`` and ``model`` when given), oldest first: the
        window "the last N predictions"."""
        filters, params = [], []
        for clause, value in (("model = {p}", model), ("version = {p}", version)):
            if value is not None:
                filters.append(clause)
                params.append(value)
        found = self._select(
            " AND ".join(filters), params, "time DESC, request_id DESC, row_index DESC", max(int(limit), 0)
        )
        found.reverse()
        return found


class SQLiteStore(Store):
    """A SQLite file in WAL mode: readers never wait for the writer, and each process's writer
    takes the file's write lock for one short transaction per batch."""

    dialect = Dialect(param="?", time_type="REAL", json_type="TEXT", json_as_text="{}")

    def _connect(self, create: bool) -> sqlite3.Connection:
        path = Path(self.target)
        if not create and not path.is_file():
            raise FileNotFoundError("no such file (nothing has been logged there yet)")
        if create:
            path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=True)
        try:
            if create:
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

    dialect = Dialect(param="%s", time_type="TIMESTAMPTZ", json_type="JSON", json_as_text="{}::text")

    def _connect(self, create: bool) -> Any:
        import psycopg  # only when a PostgreSQL log is configured

        return psycopg.connect(
            self.target, autocommit=True, connect_timeout=CONNECT_TIMEOUT, application_name="mldeploy-prediction-log"
        )

    def _transaction(self) -> contextlib.AbstractContextManager[None]:
        return self._conn.transaction()

    def _create_schema(self, cursor: Any) -> None:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        super()._create_schema(cursor)

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
