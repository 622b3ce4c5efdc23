"""Turn user input (dicts, number lists, lists of rows, arrays, DataFrames) into float rows.

Every problem is collected as a :class:`FieldError` naming the row, the field and the problem,
and raised together as one :class:`InvalidInput`, so a caller fixes all of them in one go.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Real

import numpy as np
import pandas as pd

from modeler.errors import (
    BOOLEAN,
    MISSING,
    NOT_A_NUMBER,
    NOT_FINITE,
    NULL,
    UNKNOWN,
    FieldError,
    InvalidInput,
)

# Values beyond float32's range would overflow sklearn's float32 cast, which rejects them.
FLOAT32_MAX = float(np.finfo(np.float32).max)
TOO_LARGE = "too large (beyond float32 range)"
NOT_A_ROW = "not an object or a list of numbers"
EMPTY = "empty batch: no rows"
# Enough to fix a request; a huge bad batch must not produce a huge error body.
MAX_ERRORS = 100

Rows = list[list[float]] | np.ndarray


def value_problem(value: object) -> str | None:
    """The problem with one feature value, or None when it is a usable finite number."""
    if value is None:
        return NULL
    if isinstance(value, (bool, np.bool_)):
        return BOOLEAN
    if not isinstance(value, Real):
        return NOT_A_NUMBER
    try:
        number = float(value)
    except OverflowError:
        return TOO_LARGE
    if not math.isfinite(number):
        return NOT_FINITE
    if abs(number) > FLOAT32_MAX:
        return TOO_LARGE
    return None


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


def _mapping_row(row: Mapping, features: Sequence[str], index: int, errors: list[FieldError]) -> list[float]:
    if len(row) == len(features):
        try:
            fast = _fast_floats([row[f] for f in features])
        except KeyError:
            fast = None
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


def _is_number_sequence(x: object) -> bool:
    return isinstance(x, (list, tuple)) or (isinstance(x, np.ndarray) and x.ndim == 1)


def _raise_if(errors: list[FieldError]) -> None:
    if errors:
        message = "Invalid input"
        if len(errors) > MAX_ERRORS:
            message = f"Invalid input ({len(errors)} problems, the first {MAX_ERRORS} listed)"
        raise InvalidInput(errors[:MAX_ERRORS], message)


def _frame_rows(frame: pd.DataFrame, features: Sequence[str]) -> np.ndarray:
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
    feature order); the batch forms (a list of dicts or of number lists, a 2-D array, a DataFrame)
    give False even with one row, so callers get a list back for a list in.
    """
    errors: list[FieldError] = []
    if isinstance(x, pd.DataFrame):
        return _frame_rows(x, features), False
    if isinstance(x, Mapping):
        row = _mapping_row(x, features, 0, errors)
        _raise_if(errors)
        return [row], True
    if isinstance(x, np.ndarray) and x.ndim == 2:
        if x.shape[1] != len(features):
            raise InvalidInput([FieldError(None, None, f"expected {len(features)} columns, got {x.shape[1]}")])
        return _frame_rows(pd.DataFrame(x, columns=list(features)), features), False
    if _is_number_sequence(x):
        items = list(x)
        if not items:
            raise InvalidInput([FieldError(None, None, EMPTY)])
        if not any(isinstance(i, Mapping) or _is_number_sequence(i) for i in items):
            row = _sequence_row(items, features, 0, errors)
            _raise_if(errors)
            return [row], True
        rows = []
        for index, item in enumerate(items):
            if isinstance(item, Mapping):
                rows.append(_mapping_row(item, features, index, errors))
            elif _is_number_sequence(item):
                rows.append(_sequence_row(list(item), features, index, errors))
            else:
                errors.append(FieldError(index, None, NOT_A_ROW))
            if len(errors) > MAX_ERRORS:
                break
        _raise_if(errors)
        return rows, False
    raise InvalidInput(
        [
            FieldError(
                None, None, f"expected a dict, a list of numbers, a list of rows or a DataFrame, got {type(x).__name__}"
            )
        ]
    )
