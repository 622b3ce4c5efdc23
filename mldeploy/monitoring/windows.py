"""The window of logged rows that live performance and drift look at: the last N rows
(``window=500``) or the rows answered in a recent span (``window=1h``), and the queries that read
it, newest first, for one model and version.

The log keeps one database row per request, its rows packed (:mod:`.packing`); a window counts
answered rows, so the newest requests are read a page at a time until it is full.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import orjson

from mldeploy.monitoring.packing import unpack_inputs, unpack_outputs
from mldeploy.monitoring.store import Store
from mldeploy.monitoring.timespec import parse_duration
from modeler.errors import FieldError, InvalidInput

WINDOW = "window"
# What the routes accept, as their OpenAPI parameter says: rows (a positive integer) or a
# duration, a positive integer with a unit (s, m, h, d, w).
ROWS_PATTERN = r"[1-9][0-9]{0,8}"
DURATION_PATTERN = r"[1-9][0-9]{0,5}[smhdw]"
WINDOW_PATTERN = rf"^({ROWS_PATTERN}|{DURATION_PATTERN})$"
# However wide the window, no more rows than this are read (a span's newest): the cost stays bounded.
MAX_ROWS = 100_000
# Requests per page when reading the newest first (a page of 10,000-row batches is a few MB).
PAGE_REQUESTS = 50
# Request ids per lookup query (SQLite allows 32,766 parameters; PostgreSQL 65,535).
LOOKUP_CHUNK = 500


@dataclass(frozen=True)
class Window:
    """The last ``rows`` rows, or (``seconds`` set) the rows of the last ``seconds``, at most
    ``rows`` (MAX_ROWS) of them either way."""

    rows: int
    seconds: float | None = None
    text: str = ""

    def describe(self) -> dict:
        """The window as the answers show it."""
        if self.seconds is not None:
            return {"span": self.text, "seconds": self.seconds, "max_rows": self.rows}
        return {"rows": self.rows}


def parse_window(text: str | None, default_rows: int) -> Window:
    """``window=`` as given (None: the last ``default_rows``); InvalidInput naming ``window``."""
    if text is None:
        return Window(min(default_rows, MAX_ROWS))
    # Matched as JSON Schema matches the documented pattern (re.search, ^...$), so that every value
    # the document allows is taken.
    if re.search(rf"^{ROWS_PATTERN}$", text):
        return Window(min(int(text), MAX_ROWS), text=text.strip())
    if re.search(rf"^{DURATION_PATTERN}$", text):
        return Window(MAX_ROWS, parse_duration(text).total_seconds(), text.strip())
    problem = "must be a number of rows (e.g. 500) or a duration (e.g. 30m, 1h, 7d)"
    raise InvalidInput([FieldError(None, WINDOW, problem)])


def _since(store: Store, window: Window) -> object | None:
    return None if window.seconds is None else store.time_param(time.time() - window.seconds)


def newest_requests(store: Store, model: str, version: str, window: Window, columns: str) -> Iterator[tuple]:
    """``(time, request_id, rows, *columns)`` of the version's requests in the window's span,
    newest first, a page at a time (the caller stops once it has rows enough)."""
    where, params = ["model = {p}", "version = {p}"], [model, version]
    since = _since(store, window)
    if since is not None:
        where.append("time >= {p}")
        params.append(since)
    last: tuple | None = None
    while True:
        clauses = [*where, "(time, request_id) < ({p}, {p})"] if last else where
        sql = (
            f"SELECT time, request_id, rows, {columns} FROM predictions WHERE {' AND '.join(clauses)} "
            "ORDER BY time DESC, request_id DESC LIMIT {p}"
        )
        page = store.query(sql, [*params, *(last or ()), PAGE_REQUESTS])
        yield from page
        if len(page) < PAGE_REQUESTS:
            return
        last = (page[-1][0], page[-1][1])


def logged(store: Store, model: str, version: str, window: Window) -> list[tuple[dict, object]]:
    """``(inputs, answer)`` of the window's rows, newest first (a batch's last row first)."""
    found: list[tuple[dict, object]] = []
    for _time, _rid, _rows, inputs, outputs in newest_requests(store, model, version, window, "inputs, outputs"):
        rows = list(zip(unpack_inputs(inputs), unpack_outputs(outputs), strict=True))
        found.extend(reversed(rows[-(window.rows - len(found)) :]))
        if len(found) >= window.rows:
            break
    return found


def _chunks(values: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def answers_of(store: Store, request_ids: Sequence[str], columns: str = "version") -> dict[str, tuple]:
    """``{request id: (*columns, answers)}`` for the logged requests among ``request_ids``
    (``answers``: each row's answer, unpacked)."""
    found: dict[str, tuple] = {}
    ids = sorted(set(request_ids))
    for chunk in _chunks(ids, LOOKUP_CHUNK):
        marks = ", ".join("{p}" for _ in chunk)
        sql = f"SELECT request_id, {columns}, outputs FROM predictions WHERE request_id IN ({marks})"
        for request_id, *values, outputs in store.query(sql, chunk):
            found[request_id] = (*values, unpack_outputs(outputs))
    return found


def labelled(store: Store, model: str, version: str, window: Window) -> list[tuple[datetime, object, object]]:
    """``(answered at, answer, actual)`` of the window's rows that have feedback, newest first
    (the window counts labelled rows only, by when they were answered)."""
    where, params = ["p.model = {p}", "p.version = {p}"], [model, version]
    since = _since(store, window)
    if since is not None:
        where.append("p.time >= {p}")
        params.append(since)
    sql = (
        f"SELECT p.time, f.request_id, f.row_index, {store.json_text('f.actual')} FROM feedback f "
        f"JOIN predictions p ON p.request_id = f.request_id WHERE {' AND '.join(where)} "
        "ORDER BY p.time DESC, f.request_id DESC, f.row_index DESC LIMIT {p}"
    )
    rows = store.query(sql, [*params, window.rows])
    answers = answers_of(store, [request_id for _, request_id, _, _ in rows], columns="rows")
    found = []
    for raw_time, request_id, row, actual in rows:
        held = answers[request_id][-1]
        if row < len(held):
            found.append((store.time_value(raw_time), held[row], orjson.loads(actual)))
    return found
