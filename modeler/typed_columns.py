"""The column-at-a-time path of typed validation: a batch whose every column holds only values of
its field's type (and nulls where the field takes them) is checked and converted one column at a
time, with numpy, into :class:`TypedColumns`.

Every function here answers None as soon as a column holds anything else (a wrong type, a
non-finite or too large number, a non-integer for an integer field, a null where none is taken,
or a rare value form such as pandas' NA): the row-by-row path of :mod:`modeler.typed_validation`
then validates the batch, finds each bad cell and names its row and field. What comes out of
either path is the same: the same Python values per row (:meth:`TypedColumns.tolist`), and the
same DataFrame for the model (:meth:`TypedColumns.frame_columns` holds each column exactly as
:class:`~modeler.predictors.general.GeneralPredictor` builds it from those rows).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from operator import itemgetter

import numpy as np

from modeler.cells import FLOAT32_MAX
from modeler.schema import BOOLEAN, INTEGER, NUMBER, TEXT, Field, Schema

_NONE = type(None)
_NUMBERS = frozenset({int, float})
_BOOLEANS = frozenset({bool, np.bool_})
# Integers are taken column-wise below 2**53, where a float64 holds each exactly (the row path
# keeps an integer as it is sent, and compares it with its training range exactly); beyond, the
# row path converts them, and refuses those beyond int64.
_EXACT_INTEGER = float(2**53)


class TypedColumns:
    """A validated batch of a typed schema, held column by column.

    ``frame_columns[j]`` is field ``j``'s column as the model's DataFrame takes it: float64 for a
    number (NaN for a null), int64 for an integer (float64 with NaN when it takes nulls), bool
    for a boolean, an object array for text (and for a boolean that takes nulls), NaN for a null.
    ``nulls[j]`` marks field ``j``'s nulls (None when it has none). Iterating, indexing and
    :meth:`tolist` give the rows as the row-by-row path does: Python values in field order,
    None for a null.
    """

    __slots__ = ("_rows", "frame_columns", "nulls", "schema")

    def __init__(self, schema: Schema, frame_columns: Sequence[np.ndarray], nulls: Sequence[np.ndarray | None]):
        self.schema = schema
        self.frame_columns = tuple(frame_columns)
        self.nulls = tuple(nulls)
        self._rows: list[list[object]] | None = None

    def __len__(self) -> int:
        return len(self.frame_columns[0])

    def __repr__(self) -> str:
        return f"TypedColumns({len(self)} rows, fields={list(self.schema.names)})"

    def column(self, j: int) -> list[object]:
        """Field ``j``'s values as Python values (None for a null)."""
        field, values, nulls = self.schema.fields[j], self.frame_columns[j], self.nulls[j]
        if field.type == INTEGER and values.dtype == np.float64:  # an integer field that takes nulls
            values = (values if nulls is None else np.where(nulls, 0.0, values)).astype(np.int64)
        out = values.tolist()
        if nulls is not None:
            for i in np.flatnonzero(nulls).tolist():
                out[i] = None
        return out

    def tolist(self) -> list[list[object]]:
        """The rows, each a list of Python values in field order (built once, then kept)."""
        if self._rows is None:
            columns = [self.column(j) for j in range(len(self.frame_columns))]
            self._rows = [list(row) for row in zip(*columns, strict=True)]
        return self._rows

    def __iter__(self) -> Iterator[list[object]]:
        return iter(self.tolist())

    def __getitem__(self, i: int) -> list[object]:
        return self.tolist()[i]

    def __array__(self, dtype: object = None, copy: object = None) -> np.ndarray:
        """The rows as one 2-D array, as ``np.array(rows, dtype)`` gives them (a null is NaN in a
        float array): predictors that take arrays (a tree ensemble's) read a batch so."""
        if dtype is not None and np.dtype(dtype).kind == "f" and all(f.numeric for f in self.schema.fields):
            X = np.empty((len(self), len(self.frame_columns)), dtype=dtype)
            for j, column in enumerate(self.frame_columns):
                X[:, j] = column
            return X
        return np.array(self.tolist(), dtype=dtype)


def _nan_or_not_float(values: Sequence[object]) -> bool:
    """Whether every float among ``values`` is NaN (how a DataFrame spells a missing text)."""
    return all(v != v for v in values if type(v) is float)


def _numbers(values: Sequence[object], field: Field, types: set) -> tuple[np.ndarray, np.ndarray | None] | None:
    allowed = _NUMBERS | {_NONE} if field.nullable else _NUMBERS
    if not types <= allowed:
        return None
    try:
        if _NONE in types:
            array = np.array(values, dtype=np.float64)  # None becomes NaN
        else:
            array = np.fromiter(values, dtype=np.float64, count=len(values))
    except OverflowError:  # an int beyond float64: the row path says "too large"
        return None
    with np.errstate(invalid="ignore"):
        # An integer below 2**53 only: an int sent beyond it rounds to at least 2**53. NaN: False.
        magnitude = np.abs(array)
        usable = magnitude < _EXACT_INTEGER if field.type == INTEGER else magnitude <= FLOAT32_MAX
    nulls = None
    if not usable.all():
        nulls = np.isnan(array)  # None, or a NaN the caller gave: both a missing value
        if not field.nullable or not (usable | nulls).all():
            return None
    if field.type == INTEGER:
        whole = array == np.floor(array)
        if nulls is not None:
            whole |= nulls
        if not whole.all():
            return None
        if not field.nullable:
            return array.astype(np.int64), None
    return array, nulls


def _text(values: Sequence[object], field: Field, types: set) -> tuple[np.ndarray, np.ndarray | None] | None:
    if types == {str}:
        array = np.empty(len(values), dtype=object)
        array[:] = values
        return array, None
    if not field.nullable or not types <= {str, _NONE, float} or not _nan_or_not_float(values):
        return None
    array = np.empty(len(values), dtype=object)
    array[:] = values
    nulls = np.fromiter((v is None or type(v) is float for v in values), dtype=bool, count=len(values))
    array[nulls] = np.nan  # as GeneralPredictor writes a missing text: NaN in an object column
    return array, nulls


def _booleans(values: Sequence[object], field: Field, types: set) -> tuple[np.ndarray, np.ndarray | None] | None:
    if not field.nullable:
        return (np.fromiter(values, dtype=bool, count=len(values)), None) if types <= _BOOLEANS else None
    # A boolean field that takes nulls is an object column of Python booleans, NaN for a null.
    if not types <= _BOOLEANS | {_NONE, float} or not _nan_or_not_float(values):
        return None
    array = np.empty(len(values), dtype=object)
    if types <= _BOOLEANS:
        array[:] = list(map(bool, values))
        return array, None
    nulls = np.fromiter((v is None or type(v) is float for v in values), dtype=bool, count=len(values))
    array[:] = [np.nan if null else bool(v) for v, null in zip(values, nulls.tolist(), strict=True)]
    return array, nulls


_CONVERT = {NUMBER: _numbers, INTEGER: _numbers, TEXT: _text, BOOLEAN: _booleans}


def column_at_once(values: Sequence[object], field: Field) -> tuple[np.ndarray, np.ndarray | None] | None:
    """``(the column as the model's DataFrame takes it, its nulls or None)`` when every value is
    usable for ``field`` as it is; None when any is not (the row path then names it)."""
    if not values:
        return None
    return _CONVERT[field.type](values, field, set(map(type, values)))


def typed_columns(columns: Sequence[Sequence[object]], schema: Schema) -> TypedColumns | None:
    """``columns`` (one sequence of values per field, in the schema's order) checked and
    converted; None when any column needs the row path."""
    frame_columns, nulls = [], []
    for values, field in zip(columns, schema.fields, strict=True):
        found = column_at_once(values, field)
        if found is None:
            return None
        frame_columns.append(found[0])
        nulls.append(found[1])
    if len({len(c) for c in frame_columns}) != 1:
        return None
    return TypedColumns(schema, frame_columns, nulls)


def records_columns(items: list, names: Sequence[str]) -> list[list[object]] | None:
    """Each field's values out of a list of dicts that each hold exactly ``names``; else None.
    One C-level pass per field pulls its values out of every dict."""
    if set(map(type, items)) != {dict} or set(map(len, items)) != {len(names)}:
        return None
    try:
        return [list(map(itemgetter(name), items)) for name in names]
    except KeyError:  # as many keys, but another one: a missing field and an unknown one
        return None


def lists_columns(items: list, width: int) -> list[tuple[object, ...]] | None:
    """Each position's values out of a list of lists of ``width`` values each; else None."""
    if set(map(type, items)) != {list} or set(map(len, items)) != {width}:
        return None
    return list(zip(*items, strict=True))
