"""The one set of rules for a feature's value (a "cell"), and the problem strings they report.

Two kinds of input, one rule each:

- **Typed values**: JSON bodies (HTTP ``/predict``, ``python -m mldeploy predict``), JSON lines and
  Parquet files, Python objects given to the Modeler. A value is a number only if it is one: the
  string ``"5.1"`` is ``not a number``, ``true`` is ``boolean``. :func:`value_problem` for one
  value, :func:`typed_cells` for a column of a file.
- **Text cells**: a CSV holds text, so a feature's cell is read as a number by :func:`text_cells`:
  surrounding spaces are ignored, then the text must be a decimal number, with an optional sign,
  fraction and exponent (``"5"``, ``" 5.1 "``, ``"+.5e-3"``); ``nan``/``inf`` spelt out are
  ``not finite``, ``true``/``false`` ``boolean``, an empty cell ``missing``, anything else
  (``"5,1"``, ``"1_000"``, ``"0x10"``) ``not a number``. The CSV reader converts a column whose
  every cell is a number by itself (pandas' C parser, the same grammar: a test checks they agree);
  any other column comes here as text.

In files, a missing cell (an empty CSV cell, a JSON-lines ``null``, a Parquet null) is ``missing``;
in a JSON body a ``null`` is ``null``. Every number must be finite and within float32's range,
which scikit-learn casts to.
"""

from __future__ import annotations

import math
import struct
import sys
from numbers import Real
from typing import TYPE_CHECKING

# numpy and pandas are imported by the column functions, which only ever get their arrays: the
# problem strings and value_problem come without them (the command line starts on these).
if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

# The problems a field can have; the API, the scorer and the tests import these rather than
# repeating the strings.
MISSING = "missing"
UNKNOWN = "unknown"
NOT_A_NUMBER = "not a number"
NOT_FINITE = "not finite"
BOOLEAN = "boolean"
NULL = "null"
TOO_LARGE = "too large (beyond float32 range)"

# Values beyond float32's range would overflow sklearn's float32 cast, which rejects them. The
# largest finite float32 (bits 0x7f7fffff), without importing numpy for it.
FLOAT32_MAX: float = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]
# An integer field's values become a column of int64 (as pandas reads integer training data).
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
INTEGER_TOO_LARGE = f"too large for an integer field (beyond {INT64_MIN} to {INT64_MAX})"
# Text that spells a boolean; a CSV reader may turn whole columns of it into booleans, so it is
# refused as such whether or not the reader converted it.
BOOLEAN_TEXT = frozenset({"true", "false"})
NAN_TEXT = frozenset({"nan", "+nan", "-nan"})

# Problems as small integer codes while a column is checked (object arrays of strings are slow
# to compare at a million rows); 0 means the value is usable, ``PROBLEMS[code]`` names the others.
OK = 0
PROBLEMS = (None, MISSING, NOT_A_NUMBER, NOT_FINITE, BOOLEAN, TOO_LARGE)
CODE = {problem: code for code, problem in enumerate(PROBLEMS) if problem}


def value_problem(value: object) -> str | None:
    """The problem with one typed value, or None when it is a usable finite number."""
    if value is None:
        return NULL
    if isinstance(value, bool) or _is_numpy_bool(value):
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


def _is_numpy_bool(value: object) -> bool:
    numpy = sys.modules.get("numpy")  # a numpy boolean implies numpy is loaded
    return numpy is not None and isinstance(value, numpy.bool_)


def number_problems(values: np.ndarray) -> np.ndarray:
    """Problem code per value of a float column of a file (NaN is how readers spell a missing cell)."""
    import numpy as np

    codes = np.zeros(len(values), dtype=np.uint8)
    with np.errstate(invalid="ignore"):
        codes[np.abs(values) > FLOAT32_MAX] = CODE[TOO_LARGE]
    codes[np.isinf(values)] = CODE[NOT_FINITE]
    codes[np.isnan(values)] = CODE[MISSING]
    return codes


def _typed_cell_code(value: object, na: object) -> int:
    """The code of one typed cell of a file: its null (``na``, None or NaN) is a missing cell."""
    if value is None or value is na or (isinstance(value, float) and math.isnan(value)):
        return CODE[MISSING]
    problem = value_problem(value)
    return CODE[problem] if problem else OK


def typed_cells(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Values and problem codes of a column of typed values (JSON lines, Parquet)."""
    import numpy as np
    import pandas as pd

    if pd.api.types.is_bool_dtype(column):
        codes = np.where(column.isna().to_numpy(), CODE[MISSING], CODE[BOOLEAN]).astype(np.uint8)
        return np.full(len(column), np.nan), codes
    if pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        return values, number_problems(values)
    cells = column.to_numpy(dtype=object)
    codes = np.fromiter((_typed_cell_code(v, pd.NA) for v in cells), dtype=np.uint8, count=len(cells))
    values = np.full(len(cells), np.nan)
    usable = codes == OK
    values[usable] = [float(v) for v in cells[usable]]
    return values, codes


def text_cells(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Values and problem codes of a column of text cells (CSV), by the rule in the module's doc."""
    import numpy as np
    import pandas as pd

    if pd.api.types.is_bool_dtype(column) or pd.api.types.is_numeric_dtype(column):
        return typed_cells(column)  # the reader converted the whole column already
    boolean = np.zeros(len(column), dtype=bool)
    if column.dtype == object:  # real booleans only hide among Python objects
        boolean = np.fromiter((isinstance(v, (bool, np.bool_)) for v in column.to_numpy()), bool, len(column))
    text = column.astype("str").str.strip()  # vectorised string ops; missing cells stay missing
    lower = text.str.lower()
    missing = (text.isna() | (text == "")).to_numpy(dtype=bool, na_value=True)
    boolean |= lower.isin(BOOLEAN_TEXT).to_numpy(dtype=bool, na_value=False)
    numbers = pd.to_numeric(text.where(~(missing | boolean)), errors="coerce")
    values = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    codes = number_problems(values)
    unparsed = np.isnan(values) & ~missing & ~boolean
    nan_text = lower.isin(NAN_TEXT).to_numpy(dtype=bool, na_value=False)
    codes[unparsed] = np.where(nan_text[unparsed], CODE[NOT_FINITE], CODE[NOT_A_NUMBER])
    codes[boolean] = CODE[BOOLEAN]
    codes[missing] = CODE[MISSING]
    return values, codes
