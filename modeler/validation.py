"""Turn user input (dicts, number lists, lists of rows, columns, arrays, DataFrames) into float rows.

Every problem is collected as a :class:`FieldError` naming the row, the field and the problem,
and raised together as one :class:`InvalidInput`, so a caller fixes all of them in one go.

Batches of plain numbers take a vectorised path (one type check over all values, one numpy
conversion, one range check); anything unusual falls back to the row-by-row path, which finds
and names every problem. pandas is imported only when a DataFrame is given.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from operator import itemgetter
from typing import TYPE_CHECKING

import numpy as np

# The cell rules and their problem strings live in modeler.cells (FLOAT32_MAX and TOO_LARGE are
# importable from here too, where the API's callers look for them).
from modeler.cells import BOOLEAN, FLOAT32_MAX, MISSING, NOT_FINITE, TOO_LARGE, UNKNOWN, value_problem
from modeler.errors import FieldError, InvalidInput

if TYPE_CHECKING:
    import pandas as pd

NOT_A_ROW = "not an object or a list of numbers"
EMPTY = "empty batch: no rows"
DUPLICATE = "duplicate column"
# Enough to fix a request; a huge bad batch must not produce a huge error body.
MAX_ERRORS = 100

Rows = list[list[float]] | np.ndarray
# The only value types the vectorised path accepts (bool is a subclass of int: excluded by type()).
PLAIN_NUMBERS = frozenset({float, int})


@dataclass(frozen=True)
class Columns:
    """A batch given column-wise: ``data`` holds rows of values in the order of ``names``.

    The ``{"columns": [...], "data": [[...], ...]}`` form: field names are sent once rather than
    in every row, and the columns may come in any order.
    """

    names: Sequence[str]
    data: Sequence[Sequence[object]]


@dataclass(frozen=True)
class DecodedRecords:
    """A batch of records (one object per row) that a typed JSON reader already decoded into
    floats, for a model whose fields are ``names``: ``array`` holds the rows in that order.

    Whichever model answers it takes the array only when its fields are exactly ``names`` and
    all plain numbers; any other model (a canary with other fields, a text column) gets the
    body as the general reader parses it (``parsed()``), checked and reported as ever.
    """

    names: tuple[str, ...]
    array: np.ndarray
    parsed: Callable[[], object]

    def for_model(self, features: Sequence[str], numeric_only: bool) -> object:
        """What the model of ``features`` validates: the array, or the body parsed in general."""
        if numeric_only and tuple(features) == self.names:
            X = _in_float32_range(self.array)  # as the records path checks them (NaN cannot come)
            if X is not None:
                return X
        return self.parsed()


def _fast_floats(values: Sequence[object]) -> list[float] | None:
    """The common case in one pass: plain ints/floats, all finite and in range; else None."""
    out = []
    for v in values:
        t = type(v)
        # Python compares ints with floats exactly, so a huge int cannot overflow here;
        # the comparison is also False for NaN.
        if (t is not float and t is not int) or not -FLOAT32_MAX <= v <= FLOAT32_MAX:
            return None
        out.append(float(v))
    return out


def _dict_floats(row: Mapping, features: Sequence[str]) -> list[float] | None:
    """One dict of exactly ``features``, all plain finite numbers in range, in one pass; else None."""
    if len(row) != len(features):
        return None
    out = []
    for name in features:
        v = row.get(name)  # a missing name gives None, which is not a number: the slow path says why
        t = type(v)
        if (t is not float and t is not int) or not -FLOAT32_MAX <= v <= FLOAT32_MAX:
            return None
        out.append(float(v))
    return out


def _mapping_row(row: Mapping, features: Sequence[str], index: int, errors: list[FieldError]) -> list[float]:
    fast = _dict_floats(row, features)
    if fast is not None:
        return fast
    values = []
    for name in features:
        if name not in row:
            errors.append(FieldError(index, name, MISSING))
            continue
        problem = value_problem(row[name])
        if problem:
            errors.append(FieldError(index, name, problem))
        else:
            values.append(float(row[name]))
    known = set(features)
    errors.extend(FieldError(index, str(k), UNKNOWN) for k in row if k not in known)
    return values


def _sequence_row(row: Sequence, features: Sequence[str], index: int, errors: list[FieldError]) -> list[float]:
    if len(row) == len(features):
        fast = _fast_floats(row)
        if fast is not None:
            return fast
    else:
        errors.append(
            FieldError(
                index, None, f"expected {len(features)} values in the order {', '.join(features)}, got {len(row)}"
            )
        )
        return []
    values = []
    for name, value in zip(features, row, strict=True):
        problem = value_problem(value)
        if problem:
            errors.append(FieldError(index, name, problem))
        else:
            values.append(float(value))
    return values


def _in_float32_range(X: np.ndarray) -> np.ndarray | None:
    """``X`` when every value is finite and within float32's range, else None."""
    with np.errstate(invalid="ignore"):
        return X if (np.abs(X) <= FLOAT32_MAX).all() else None  # False for NaN too


def _plain_array(rows: Sequence[Sequence[object]], width: int) -> np.ndarray | None:
    """``rows`` (each of ``width`` values) as a float64 array when every value is a plain
    int/float, finite and in float32 range; else None (the row-by-row path names the problem)."""
    if not set(map(type, chain.from_iterable(rows))) <= PLAIN_NUMBERS:
        return None
    try:
        X = np.fromiter(chain.from_iterable(rows), dtype=np.float64, count=len(rows) * width)
    except (OverflowError, ValueError):  # a huge int
        return None
    return _in_float32_range(X.reshape(len(rows), width))


def _records_array(items: list, features: Sequence[str]) -> np.ndarray | None:
    """A list of dicts holding exactly ``features``, as a float64 array; else None.

    Column by column: one C-level pass per feature pulls its values out of every dict, which
    beats building a tuple per row.
    """
    if set(map(type, items)) != {dict} or set(map(len, items)) != {len(features)}:
        return None
    X = np.empty((len(items), len(features)), dtype=np.float64)
    for j, name in enumerate(features):
        try:
            column = list(map(itemgetter(name), items))
        except KeyError:  # same length but another key: an unknown field stands in for a missing one
            return None
        if not set(map(type, column)) <= PLAIN_NUMBERS:
            return None
        try:
            X[:, j] = np.fromiter(column, dtype=np.float64, count=len(column))
        except OverflowError:  # a huge int
            return None
    return _in_float32_range(X)


def _lists_array(items: list, width: int) -> np.ndarray | None:
    """A list of number lists of ``width`` values each, as a float64 array; else None."""
    if set(map(type, items)) != {list} or set(map(len, items)) != {width}:
        return None
    return _plain_array(items, width)


def _array_rows(X: np.ndarray, features: Sequence[str]) -> np.ndarray:
    """A 2-D numeric array checked value by value, vectorised: booleans, NaN, ±inf and values
    beyond float32's range are reported with their row and field."""
    if X.shape[1] != len(features):
        raise InvalidInput([FieldError(None, None, f"expected {len(features)} columns, got {X.shape[1]}")])
    if len(X) == 0:
        raise InvalidInput([FieldError(None, None, EMPTY)])
    if X.dtype == np.bool_:
        _raise_if([FieldError(i, f, BOOLEAN) for i in range(min(len(X), MAX_ERRORS + 1)) for f in features])
    if X.dtype.kind not in "iuf":  # object or string arrays: check each cell
        errors: list[FieldError] = []
        rows = [_sequence_row(row, features, i, errors) for i, row in enumerate(X.tolist())]
        _raise_if(errors)
        return np.array(rows, dtype=np.float64)
    X = np.asarray(X, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bad = ~(np.abs(X) <= FLOAT32_MAX)
    if bad.any():
        _raise_if(
            [
                FieldError(int(i), features[j], NOT_FINITE if not np.isfinite(X[i, j]) else TOO_LARGE)
                for i, j in np.argwhere(bad)[: MAX_ERRORS + 1].tolist()
            ]
        )
    return X


def _columns_rows(x: Columns, features: Sequence[str]) -> np.ndarray:
    """The columnar form as a float64 array in model feature order."""
    names = [str(n) for n in x.names]
    errors: list[FieldError] = []
    seen: set[str] = set()
    for name in names:
        if name in seen:
            errors.append(FieldError(None, name, DUPLICATE))
        seen.add(name)
    errors.extend(FieldError(None, f, MISSING) for f in features if f not in seen)
    known = set(features)
    errors.extend(FieldError(None, n, UNKNOWN) for n in names if n not in known)
    _raise_if(errors)
    if not x.data:
        raise InvalidInput([FieldError(None, None, EMPTY)])
    X = _lists_array(x.data, len(names)) if isinstance(x.data, list) else None
    if X is None:
        X = np.array(_rows_one_by_one(x.data, names, mappings=False), dtype=np.float64)
    order = [names.index(f) for f in features]
    return X if order == list(range(len(features))) else X[:, order]


def _rows_one_by_one(items: Sequence, names: Sequence[str], *, mappings: bool = True) -> list[list[float]]:
    """The slow path for a batch: each row checked on its own (dicts too when ``mappings``), every
    problem collected with its row, up to MAX_ERRORS."""
    errors: list[FieldError] = []
    rows = []
    for index, item in enumerate(items):
        if mappings and isinstance(item, Mapping):
            rows.append(_mapping_row(item, names, index, errors))
        elif _is_number_sequence(item):
            rows.append(_sequence_row(list(item), names, index, errors))
        else:
            errors.append(FieldError(index, None, NOT_A_ROW))
        if len(errors) > MAX_ERRORS:
            break
    _raise_if(errors)
    return rows


def _is_number_sequence(x: object) -> bool:
    return isinstance(x, (list, tuple)) or (isinstance(x, np.ndarray) and x.ndim == 1)


def _raise_if(errors: list[FieldError]) -> None:
    if errors:
        message = "Invalid input"
        if len(errors) > MAX_ERRORS:
            message = f"Invalid input ({len(errors)} problems, the first {MAX_ERRORS} listed)"
        raise InvalidInput(errors[:MAX_ERRORS], message)


def _frame_rows(frame: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
    import pandas as pd  # only ever called with a DataFrame, so pandas is loaded already

    errors: list[FieldError] = []
    columns = [str(c) for c in frame.columns]
    errors.extend(FieldError(None, f, MISSING) for f in features if f not in columns)
    errors.extend(FieldError(None, c, UNKNOWN) for c in columns if c not in features)
    _raise_if(errors)
    if len(frame) == 0:
        raise InvalidInput([FieldError(None, None, EMPTY)])
    frame = frame.set_axis(columns, axis=1)
    out = np.empty((len(frame), len(features)), dtype=np.float64)
    for j, name in enumerate(features):
        column = frame[name]
        if pd.api.types.is_bool_dtype(column):
            errors.extend(FieldError(i, name, BOOLEAN) for i in range(min(len(column), MAX_ERRORS + 1)))
            continue
        if pd.api.types.is_numeric_dtype(column):
            values = column.to_numpy(dtype=np.float64, na_value=np.nan)
            with np.errstate(invalid="ignore"):
                bad = ~(np.abs(values) <= FLOAT32_MAX)
            for i in np.flatnonzero(bad)[: MAX_ERRORS + 1]:
                errors.append(FieldError(int(i), name, NOT_FINITE if not np.isfinite(values[i]) else TOO_LARGE))
            out[:, j] = values
            continue
        for i, value in enumerate(column.tolist()):  # object columns: check each cell
            problem = value_problem(value)
            if problem:
                errors.append(FieldError(i, name, problem))
                if len(errors) > MAX_ERRORS:
                    break
            else:
                out[i, j] = float(value)
    _raise_if(errors)
    return out


def to_rows(x: object, features: Sequence[str]) -> tuple[Rows, bool]:
    """Validate ``x`` against ``features``; return ``(rows, single)``.

    ``single`` is True for the one-row forms (a dict, or a flat list/tuple/1-D array of numbers in
    feature order); the batch forms (a list of dicts or of number lists, :class:`Columns`, a 2-D
    array, a DataFrame) give False even with one row, so callers get a list back for a list in.
    """
    if type(x) is dict:  # the most common call first, before any slower isinstance check
        row = _dict_floats(x, features)
        if row is not None:
            return [row], True
    elif type(x) is list:
        if len(x) == len(features):  # {"features": [...]}: numbers in order
            row = _fast_floats(x)
            if row is not None:
                return [row], True
        if len(x) == 1 and type(x[0]) is list and len(x[0]) == len(features):  # a batch of one row
            row = _fast_floats(x[0])
            if row is not None:
                return [row], False
    errors: list[FieldError] = []
    pd = sys.modules.get("pandas")  # a DataFrame implies pandas is loaded; never import it here
    if pd is not None and isinstance(x, pd.DataFrame):
        return _frame_rows(x, features), False
    if isinstance(x, Columns):
        return _columns_rows(x, features), False
    if isinstance(x, Mapping):
        row = _mapping_row(x, features, 0, errors)
        _raise_if(errors)
        return [row], True
    if isinstance(x, np.ndarray) and x.ndim == 2:
        return _array_rows(x, features), False
    if _is_number_sequence(x):
        items = list(x)
        if not items:
            raise InvalidInput([FieldError(None, None, EMPTY)])
        if not any(isinstance(i, Mapping) or _is_number_sequence(i) for i in items):
            row = _sequence_row(items, features, 0, errors)
            _raise_if(errors)
            return [row], True
        fast = _records_array(items, features) if type(items[0]) is dict else _lists_array(items, len(features))
        if fast is not None:
            return fast, False
        return _rows_one_by_one(items, features), False
    raise InvalidInput(
        [
            FieldError(
                None, None, f"expected a dict, a list of numbers, a list of rows or a DataFrame, got {type(x).__name__}"
            )
        ]
    )
