"""The window of logged rows that live performance and drift look at: the last N rows
(``window=500``) or the rows answered in a recent span (``window=1h``), and the queries that read
it, newest first, for one model and version."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

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


@dataclass(frozen=True)
class Window:
    """The last ``rows`` rows, or (``seconds`` set) the rows of the last ``seconds``, at most
    MAX_ROWS of them either way."""

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


def _select(store: Store, columns: str, source: str, window: Window, model: str, version: str) -> tuple[str, list]:
    where, params = ["p.model = {p}", "p.version = {p}"], [model, version]
    if window.seconds is not None:
        where.append("p.time >= {p}")
        params.append(store.time_param(time.time() - window.seconds))
    order = "p.time DESC, p.request_id DESC, p.row_index DESC"
    sql = f"SELECT {columns} FROM {source} WHERE {' AND '.join(where)} ORDER BY {order} LIMIT {{p}}"
    return sql, [*params, window.rows]


def logged(store: Store, model: str, version: str, window: Window) -> list[tuple[str, str]]:
    """``(inputs JSON, outputs JSON)`` of the window's rows, newest first."""
    columns = f"{store.json_text('p.inputs')}, {store.json_text('p.outputs')}"
    sql, params = _select(store, columns, "predictions p", window, model, version)
    return store.query(sql, params)


def labelled(store: Store, model: str, version: str, window: Window) -> list[tuple[object, str, str]]:
    """``(answered at, outputs JSON, actual JSON)`` of the window's rows that have feedback,
    newest first (the window counts labelled rows only, by when they were answered)."""
    columns = f"p.time, {store.json_text('p.outputs')}, {store.json_text('f.actual')}"
    source = "predictions p JOIN feedback f ON f.request_id = p.request_id AND f.row_index = p.row_index"
    sql, params = _select(store, columns, source, window, model, version)
    return store.query(sql, params)
