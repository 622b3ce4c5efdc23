"""The prediction log as a table, written as CSV or Parquet (by the file's extension).

One row per answered row: ``time`` (UTC), ``request_id``, ``row``, ``model``, ``version``, then
one column per input field (in the order first seen) and per output field: ``Class`` or
``Prediction``, and one column per class for ``Probabilities`` (named after the class, as
``score`` names them). A name that is already taken gets its group as a prefix (``input.time``,
``output.x``, ``Probabilities.x``).

The log is read twice inside one read snapshot: once for the columns and their types, once for
the rows, a chunk at a time, so memory stays flat and a column keeps one type in every chunk
(Parquet needs that). The file appears only when complete (temp file + ``os.replace``).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import orjson

from mldeploy.contract import PROBABILITIES
from mldeploy.monitoring.records import LogRecord
from mldeploy.monitoring.store import Store
from mldeploy.scoring.names import CSV, PARQUET_FORMAT, format_of

META_COLUMNS = ("time", "request_id", "row", "model", "version")
EXPORT_FORMATS = (CSV, PARQUET_FORMAT)
CHUNK_ROWS = 50_000
INPUT, OUTPUT = "input", "output"

# Column kinds, from the JSON values a column holds; a mix of kinds is written as text.
BOOL, INT, FLOAT, TEXT = "bool", "int", "float", "text"
_PANDAS_DTYPE = {BOOL: "boolean", INT: "Int64", FLOAT: "float64", TEXT: "string"}


@dataclass
class Column:
    """One exported column: where its value comes from, and what kinds of value it holds."""

    name: str
    group: str  # INPUT or OUTPUT
    key: str
    subkey: str | None = None  # a class, inside Probabilities
    kinds: set[type] = field(default_factory=set)

    def value(self, record: LogRecord) -> object:
        """This column's value in ``record`` (None when absent)."""
        value = (record.inputs if self.group == INPUT else record.outputs).get(self.key)
        if self.subkey is not None:
            value = value.get(self.subkey) if isinstance(value, dict) else None
        return value

    @property
    def kind(self) -> str:
        """BOOL, INT, FLOAT or TEXT."""
        kinds = self.kinds - {type(None)}
        if kinds == {bool}:
            return BOOL
        if kinds == {int}:
            return INT
        if kinds and kinds <= {int, float}:
            return FLOAT
        return TEXT

    def cells(self, values: list[object]) -> list[object]:
        """``values`` fit for this column's kind: as they are, or as text (JSON for non-strings)."""
        if self.kind != TEXT:
            return values
        return [v if v is None or isinstance(v, str) else orjson.dumps(v).decode() for v in values]


def plan_columns(records: Iterable[LogRecord]) -> list[Column]:
    """The input and output columns that ``records`` need, in the order their fields first appear."""
    columns: dict[tuple, Column] = {}
    taken = set(META_COLUMNS)

    def column(group: str, key: str, subkey: str | None = None) -> Column:
        source = (group, key, subkey)
        found = columns.get(source)
        if found is None:
            name = key if subkey is None else subkey
            if name in taken:
                name = f"{key if subkey is not None else group}.{name}"
            taken.add(name)
            found = columns[source] = Column(name, group, key, subkey)
        return found

    for record in records:
        for key, value in record.inputs.items():
            column(INPUT, key).kinds.add(type(value))
        for key, value in record.outputs.items():
            if key == PROBABILITIES and isinstance(value, dict):
                for cls, probability in value.items():
                    column(OUTPUT, key, cls).kinds.add(type(probability))
            else:
                column(OUTPUT, key).kinds.add(type(value))
    return list(columns.values())


def _chunks(records: Iterator[LogRecord], size: int) -> Iterator[list[LogRecord]]:
    while chunk := list(itertools.islice(records, size)):
        yield chunk


def _frame(records: list[LogRecord], columns: list[Column]):  # -> pandas.DataFrame
    import pandas as pd

    data = {
        "time": pd.to_datetime([r.time for r in records], utc=True),
        "request_id": pd.array([r.request_id for r in records], dtype="string"),
        "row": pd.array([r.row for r in records], dtype="Int64"),
        "model": pd.array([r.model for r in records], dtype="string"),
        "version": pd.array([r.version for r in records], dtype="string"),
    }
    for c in columns:
        data[c.name] = pd.array(c.cells([c.value(r) for r in records]), dtype=_PANDAS_DTYPE[c.kind])
    return pd.DataFrame(data)


def export_log(
    store: Store,
    path: str | os.PathLike,
    *,
    since: datetime | None = None,
    version: str | None = None,
    model: str | None = None,
    chunk_rows: int = CHUNK_ROWS,
) -> int:
    """Write the rows of ``store`` (answered at or after ``since``, of ``version`` and ``model``
    when given) to ``path``, CSV or Parquet by its extension; returns how many rows."""
    from mldeploy.scoring.formats import ChunkWriter  # pandas: only when exporting

    path = Path(path)
    fmt = format_of(path)
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"cannot tell the format of {path}: name it .csv, or .parquet/.pq")
    selection = {"since": since, "version": version, "model": model}
    with store.snapshot():
        columns = plan_columns(store.rows(**selection))
        with ChunkWriter(path, fmt) as out:
            for chunk in _chunks(store.rows(**selection), chunk_rows):
                out.write(_frame(chunk, columns))
            if not out.rows:
                out.write(_frame([], columns))  # the header (or schema) alone
            out.commit()
    return out.rows
