"""Validation by the model's schema for models whose fields are not all plain numbers: text and
boolean columns, integers, and ``null`` where the model takes missing values.

The same input forms as :func:`modeler.validation.to_rows` (a dict, a list of values in field
order, a list of dicts or of lists, :class:`~modeler.validation.Columns`, a 2-D array, a
DataFrame), the same errors (one :class:`FieldError` per bad field, naming its row), and rows of
Python values in field order: ``float`` for a number, ``int`` for an integer, ``str``, ``bool``,
``None`` for a null. A schema of plain numbers never comes here: it keeps the float fast path.

A batch is first tried column by column (:mod:`modeler.typed_columns`: one vectorised check and
conversion per field, no Python work per cell), which gives :class:`TypedColumns` holding the
same rows; any batch that fails that check is validated row by row, which names each problem.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from modeler.cells import BOOLEAN, INT64_MAX, INT64_MIN, INTEGER_TOO_LARGE, MISSING, NULL, UNKNOWN, value_problem
from modeler.errors import FieldError, InvalidInput
from modeler.schema import INTEGER, TEXT, Field, Schema
from modeler.typed_columns import TypedColumns, lists_columns, records_columns, typed_columns
from modeler.validation import DUPLICATE, EMPTY, MAX_ERRORS, NOT_A_ROW, Columns, _raise_if

if TYPE_CHECKING:
    import pandas as pd

NOT_TEXT = "not text"
NOT_A_BOOLEAN = "not a boolean"
NOT_AN_INTEGER = "not an integer"

TypedRows = list[list[object]]


def _missing(value: object) -> bool:
    """None, NaN, or pandas' NA/NaT: how each input form spells a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return True
    pd = sys.modules.get("pandas")
    return pd is not None and (value is pd.NA or value is pd.NaT)


def cell(value: object, field: Field) -> tuple[object, str | None]:
    """``(value as the model takes it, problem or None)`` for one value of ``field``."""
    if _missing(value):
        return None, (None if field.nullable else NULL)
    kind = field.type
    if kind == TEXT:
        if isinstance(value, str):
            return value, None
        return None, NOT_TEXT
    if kind == BOOLEAN:
        if isinstance(value, (bool, np.bool_)):
            return bool(value), None
        return None, NOT_A_BOOLEAN
    problem = value_problem(value)
    if problem:
        return None, problem
    if kind == INTEGER:
        number = float(value)  # type: ignore[arg-type]
        if not number.is_integer():
            return None, NOT_AN_INTEGER
        # An integer as it is sent (exact beyond 2**53); a whole float as the integer it is. A
        # float of 2**63 or more cannot be told from a rounded integer beyond int64 (the JSON
        # reader turns one below -2**63 into the float -2**63): refused as beyond int64.
        exact = isinstance(value, (int, np.integer))
        whole = int(value) if exact else int(number)  # type: ignore[arg-type]
        if not INT64_MIN <= whole <= INT64_MAX or (not exact and abs(number) >= 2.0**63):
            return None, INTEGER_TOO_LARGE
        return whole, None
    return float(value), None  # type: ignore[arg-type]


def _row(values: Sequence[object], fields: Sequence[Field], index: int, errors: list[FieldError]) -> list[object]:
    out = []
    for value, field in zip(values, fields, strict=True):
        converted, problem = cell(value, field)
        if problem:
            errors.append(FieldError(index, field.name, problem))
        out.append(converted)
    return out


def _mapping_row(
    row: Mapping, schema: Schema, index: int, errors: list[FieldError], known: frozenset[str] | None = None
) -> list[object]:
    values = []
    for field in schema.fields:
        if field.name not in row:
            errors.append(FieldError(index, field.name, MISSING))
            values.append(None)
        else:
            values.append(row[field.name])
    out = _row(values, schema.fields, index, errors)
    known = frozenset(schema.names) if known is None else known
    errors.extend(FieldError(index, str(k), UNKNOWN) for k in row if k not in known)
    return out


def _sequence_row(row: Sequence, schema: Schema, index: int, errors: list[FieldError]) -> list[object]:
    if len(row) != len(schema.fields):
        names = ", ".join(schema.names)
        errors.append(
            FieldError(index, None, f"expected {len(schema.fields)} values in the order {names}, got {len(row)}")
        )
        return []
    return _row(row, schema.fields, index, errors)


def _is_row_sequence(x: object) -> bool:
    return isinstance(x, (list, tuple)) or (isinstance(x, np.ndarray) and x.ndim == 1)


def _at_once(items: list, schema: Schema) -> TypedColumns | None:
    """A batch of dicts, or of lists in field order, column by column; None when it needs the
    row path."""
    if type(items[0]) is dict:
        columns = records_columns(items, schema.names)
    else:
        columns = lists_columns(items, len(schema.fields))
    return None if columns is None else typed_columns(columns, schema)


def _rows(items: Sequence, schema: Schema, *, at_once: bool = True) -> TypedRows | TypedColumns:
    if at_once and isinstance(items, list) and items:
        batch = _at_once(items, schema)
        if batch is not None:
            return batch
    errors: list[FieldError] = []
    rows = []
    known = frozenset(schema.names)
    for index, item in enumerate(items):
        if isinstance(item, Mapping):
            rows.append(_mapping_row(item, schema, index, errors, known))
        elif _is_row_sequence(item):
            rows.append(_sequence_row(list(item), schema, index, errors))
        else:
            errors.append(FieldError(index, None, NOT_A_ROW))
        if len(errors) > MAX_ERRORS:
            break
    _raise_if(errors)
    return rows


def _check_names(names: list[str], schema: Schema) -> None:
    """InvalidInput naming each duplicate, missing and unknown column of a column-wise batch."""
    errors: list[FieldError] = []
    seen: set[str] = set()
    for name in names:
        if name in seen:
            errors.append(FieldError(None, name, DUPLICATE))
        seen.add(name)
    errors.extend(FieldError(None, f, MISSING) for f in schema.names if f not in seen)
    known = set(schema.names)
    errors.extend(FieldError(None, n, UNKNOWN) for n in names if n not in known)
    _raise_if(errors)


def _columns(
    names: list[str], data: Sequence[Sequence[object]], schema: Schema, *, at_once: bool = True
) -> TypedRows | TypedColumns:
    """Rows given column-wise (the columns in any order), in the schema's order."""
    _check_names(names, schema)
    if len(data) == 0:
        raise InvalidInput([FieldError(None, None, EMPTY)])
    order = [names.index(f) for f in schema.names]
    columns = lists_columns(data, len(names)) if at_once and isinstance(data, list) else None
    if columns is not None:
        batch = typed_columns([columns[j] for j in order], schema)
        if batch is not None:
            return batch
    errors: list[FieldError] = []
    reordered = []
    for index, row in enumerate(data):
        if not _is_row_sequence(row) or len(row) != len(names):
            errors.append(FieldError(index, None, f"expected {len(names)} values, one per column"))
            continue
        reordered.append([row[j] for j in order])
    _raise_if(errors)
    return _rows(reordered, schema, at_once=False)


def _frame(frame: pd.DataFrame, schema: Schema) -> TypedRows | TypedColumns:
    """A DataFrame: column by column when it can, else its values row by row as Python objects."""
    names = [str(c) for c in frame.columns]
    _check_names(names, schema)
    if len(frame):
        # Each column's values as the row path reads them: astype(object), then Python objects.
        values = [frame.iloc[:, names.index(f)].astype(object).tolist() for f in schema.names]
        batch = typed_columns(values, schema)
        if batch is not None:
            return batch
    return _columns(names, frame.astype(object).to_numpy().tolist(), schema, at_once=False)


def to_typed_rows(x: object, schema: Schema) -> tuple[TypedRows | TypedColumns, bool]:
    """Validate ``x`` against ``schema``; ``(rows, single)`` as :func:`~modeler.validation.to_rows`
    gives them, the values typed per field (None for a null): a list of rows, or for a batch
    whose every column passed the column-wise check, :class:`TypedColumns` holding those rows."""
    errors: list[FieldError] = []
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(x, pd.DataFrame):
        return _frame(x, schema), False
    if isinstance(x, Columns):
        return _columns([str(n) for n in x.names], x.data, schema), False
    if isinstance(x, Mapping):
        row = _mapping_row(x, schema, 0, errors)
        _raise_if(errors)
        return [row], True
    if isinstance(x, np.ndarray) and x.ndim == 2:
        if x.shape[1] != len(schema.fields):
            raise InvalidInput([FieldError(None, None, f"expected {len(schema.fields)} columns, got {x.shape[1]}")])
        if len(x) == 0:
            raise InvalidInput([FieldError(None, None, EMPTY)])
        return _rows(x.tolist(), schema), False
    if _is_row_sequence(x):
        items = list(x)
        if not items:
            raise InvalidInput([FieldError(None, None, EMPTY)])
        if not any(isinstance(i, Mapping) or _is_row_sequence(i) for i in items):
            row = _sequence_row(items, schema, 0, errors)
            _raise_if(errors)
            return [row], True
        return _rows(items, schema), False
    raise InvalidInput(
        [
            FieldError(
                None, None, f"expected a dict, a list of values, a list of rows or a DataFrame, got {type(x).__name__}"
            )
        ]
    )


# -- the answer's side: what a caller is told about unusual values -------------------------------

UNSEEN = "unseen category"


class CategoryWarning:
    """A text or boolean value not seen in training: answered as the model answers it."""

    __slots__ = ("categories", "field", "value")

    def __init__(self, field: str, value: object, categories: Sequence[object]) -> None:
        self.field = field
        self.value = value
        self.categories = tuple(categories)

    def as_dict(self) -> dict:
        """JSON-ready: ``{"field", "value", "problem": "unseen category", "categories": [...]}``."""
        return {"field": self.field, "value": self.value, "problem": UNSEEN, "categories": list(self.categories)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CategoryWarning) and self.as_dict() == other.as_dict()

    def __repr__(self) -> str:
        return f"CategoryWarning({self.field!r}, {self.value!r})"


def unusual_values(rows: TypedRows | TypedColumns, schema: Schema) -> dict[int, list]:
    """``{row: warnings}``: numbers outside their training range (:class:`RangeWarning`) and
    categories not seen in training (:class:`CategoryWarning`); nulls are never flagged. Rows
    in input order, each row's warnings in field order."""
    from modeler.ranges import RangeWarning

    if isinstance(rows, TypedColumns):
        return _unusual_in_columns(rows, schema)

    checks = []
    for j, field in enumerate(schema.fields):
        if field.numeric and field.min is not None and field.max is not None:
            checks.append((j, field, "range", (field.min, field.max)))
        elif field.categories is not None and not field.numeric:
            checks.append((j, field, "category", frozenset(field.categories)))
    found: dict[int, list] = {}
    if not checks:
        return found
    for i, row in enumerate(rows):
        for j, field, what, known in checks:
            value = row[j]
            if value is None:
                continue
            if what == "range":
                if not known[0] <= value <= known[1]:
                    found.setdefault(i, []).append(RangeWarning(field.name, float(value), known))
            elif value not in known:
                found.setdefault(i, []).append(CategoryWarning(field.name, value, field.categories))
    return found


def _unusual_in_columns(batch: TypedColumns, schema: Schema) -> dict[int, list]:
    """:func:`unusual_values` of a batch held column by column: one vectorised check per field."""
    from modeler.ranges import RangeWarning

    found: dict[int, list] = {}
    for j, field in enumerate(schema.fields):
        if field.numeric and field.min is not None and field.max is not None:
            values, nulls = batch.frame_columns[j], batch.nulls[j]
            outside = ~((values >= field.min) & (values <= field.max))  # NaN (a null) is outside: unmarked next
            if nulls is not None:
                outside &= ~nulls
            known = (field.min, field.max)
            for i in np.flatnonzero(outside).tolist():
                found.setdefault(i, []).append(RangeWarning(field.name, float(values[i]), known))
        elif field.categories is not None and not field.numeric:
            categories = frozenset(field.categories)
            for i, value in enumerate(batch.column(j)):
                if value is not None and value not in categories:
                    found.setdefault(i, []).append(CategoryWarning(field.name, value, field.categories))
    # Fields were visited in order, so each row's warnings are in field order; rows in input order.
    return dict(sorted(found.items())) if len(found) > 1 else found
