"""Scoring a table of rows where bad rows are set aside instead of failing the whole table.

This is the engine of ``python -m mldeploy score``, for local chunks and Dask partitions alike:
:func:`score_frame` takes one chunk, predicts its good rows and lists every bad field of the others
with its row number and problem. Unlike :func:`modeler.validation.to_rows` (which rejects a whole
request), it is lenient about representation, because files carry text: a cell that reads as a
number is a number. Extra columns (ids and the like) are carried through untouched.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from modeler.errors import BOOLEAN, MISSING, NOT_A_NUMBER, NOT_FINITE, FieldError, InvalidInput, ModelIntegrityError
from modeler.modeler import LoadedModel, Modeler
from modeler.validation import FLOAT32_MAX, TOO_LARGE

CLASS_COLUMN = "Class"
ERROR_COLUMNS = ("row", "field", "problem", "value")
CLASHES = "clashes with an output column: rename it"
# Text that spells a boolean; a CSV reader turns whole columns of it into booleans, so it is
# rejected as such whether or not the reader converted it.
BOOLEAN_TEXT = frozenset({"true", "false"})
NAN_TEXT = frozenset({"nan", "+nan", "-nan"})
# Keep an errors file readable when a cell holds a whole paragraph.
MAX_VALUE_CHARS = 200


@dataclass(frozen=True)
class ScoredChunk:
    """One scored chunk: the good rows with their predictions, and one line per bad field."""

    scored: pd.DataFrame
    errors: pd.DataFrame
    rows: int
    failed_rows: int


def check_columns(columns: Sequence[object], features: Sequence[str], classes: Sequence[str]) -> None:
    """Raise :class:`InvalidInput` when a feature column is absent or an input column would be
    overwritten by an output column. Extra columns are fine: they are carried through."""
    names = [str(c) for c in columns]
    errors = [FieldError(None, f, MISSING) for f in features if f not in names]
    errors += [FieldError(None, c, CLASHES) for c in names if c in (CLASS_COLUMN, *classes)]
    if errors:
        raise InvalidInput(errors, "The input's columns do not fit the model")


# Problems are small integer codes while a chunk is checked (object arrays of strings are slow
# to compare at a million rows); 0 means the value is usable.
OK = 0
PROBLEMS = (None, MISSING, NOT_A_NUMBER, NOT_FINITE, BOOLEAN, TOO_LARGE)
CODE = {problem: code for code, problem in enumerate(PROBLEMS) if problem}


def _number_problems(values: np.ndarray) -> np.ndarray:
    """Problem code per value of a float array."""
    codes = np.zeros(len(values), dtype=np.uint8)
    with np.errstate(invalid="ignore"):
        codes[np.abs(values) > FLOAT32_MAX] = CODE[TOO_LARGE]
    codes[np.isinf(values)] = CODE[NOT_FINITE]
    codes[np.isnan(values)] = CODE[MISSING]
    return codes


def _text_problems(column: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Values and problem codes of a column of text (or of mixed objects, as JSON lines give)."""
    boolean = np.zeros(len(column), dtype=bool)
    if column.dtype == object:  # real booleans only hide among Python objects
        boolean = np.fromiter((isinstance(v, (bool, np.bool_)) for v in column.to_numpy()), bool, len(column))
    text = column.astype("str").str.strip()  # vectorised string ops; missing cells stay missing
    lower = text.str.lower()
    missing = (text.isna() | (text == "")).to_numpy(dtype=bool, na_value=True)
    boolean |= lower.isin(BOOLEAN_TEXT).to_numpy(dtype=bool, na_value=False)
    numbers = pd.to_numeric(text.where(~(missing | boolean)), errors="coerce")
    values = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    codes = _number_problems(values)
    unparsed = np.isnan(values) & ~missing & ~boolean
    nan_text = lower.isin(NAN_TEXT).to_numpy(dtype=bool, na_value=False)
    codes[unparsed] = np.where(nan_text[unparsed], CODE[NOT_FINITE], CODE[NOT_A_NUMBER])
    codes[boolean] = CODE[BOOLEAN]
    codes[missing] = CODE[MISSING]
    return values, codes


def feature_values(frame: pd.DataFrame, features: Sequence[str]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The features as a float array, and per feature a problem code per row (0 if usable; the
    problem is ``PROBLEMS[code]``)."""
    values = np.empty((len(frame), len(features)), dtype=np.float64)
    codes: dict[str, np.ndarray] = {}
    for j, name in enumerate(features):
        column = frame[name]
        if pd.api.types.is_bool_dtype(column):
            values[:, j] = np.nan
            codes[name] = np.where(column.isna().to_numpy(), CODE[MISSING], CODE[BOOLEAN]).astype(np.uint8)
        elif pd.api.types.is_numeric_dtype(column):
            values[:, j] = column.to_numpy(dtype=np.float64, na_value=np.nan)
            codes[name] = _number_problems(values[:, j])
        else:
            values[:, j], codes[name] = _text_problems(column)
    return values, codes


def _shown(value: object) -> str:
    """A cell as text for the errors file ("" for a missing one, however the reader spelt it)."""
    missing = value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
    text = "" if missing else str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[: MAX_VALUE_CHARS - 1] + "…"


def _error_table(frame: pd.DataFrame, codes: dict[str, np.ndarray], first_row: int) -> pd.DataFrame:
    parts = []
    for name, found in codes.items():
        at = np.flatnonzero(found)
        if len(at):
            shown = [_shown(v) for v in frame[name].iloc[at].to_numpy(dtype=object)]
            problem = np.asarray(PROBLEMS, dtype=object)[found[at]]
            parts.append(pd.DataFrame({"row": at + first_row, "field": name, "problem": problem, "value": shown}))
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype=object if c != "row" else np.int64) for c in ERROR_COLUMNS})
    # Row order, then the model's feature order within a row (a stable sort keeps it).
    return pd.concat(parts, ignore_index=True).sort_values("row", kind="stable", ignore_index=True)


def score_frame(model: LoadedModel, frame: pd.DataFrame, first_row: int = 0) -> ScoredChunk:
    """Score one chunk: good rows get ``Class`` and one probability column per class, in input
    order; bad rows are left out and reported. ``first_row`` numbers the chunk's rows in the file.

    Feature columns in the output hold the values the model saw (as floats); other columns are
    the input's as they were.
    """
    features, classes = model.features, model.tree.classes
    check_columns(frame.columns, features, classes)
    frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
    values, codes = feature_values(frame, features)
    bad = np.zeros(len(frame), dtype=bool)
    for found in codes.values():
        bad |= found != OK
    good = ~bad
    scored = frame.reset_index(drop=True) if not bad.any() else frame.loc[good].reset_index(drop=True)
    good_values = values[good]
    for j, name in enumerate(features):
        scored[name] = good_values[:, j]
    tree = model.tree
    leaves = model.leaves(good_values) if len(good_values) else np.zeros(0, dtype=np.intp)
    scored[CLASS_COLUMN] = pd.Series(np.asarray(tree.leaf_labels, dtype=object)[leaves], dtype=object)
    probabilities = tree.leaf_proba[leaves]
    for j, name in enumerate(classes):
        scored[name] = probabilities[:, j]
    errors = _error_table(frame, codes, first_row)
    return ScoredChunk(scored, errors, rows=len(frame), failed_rows=int(bad.sum()))


# -- one model per process, pinned by its hash (Dask workers) -----------------------------------

_pinned: dict[tuple[str, str, str], LoadedModel] = {}
_pinned_lock = threading.Lock()


def load_pinned(model_dir: str, version: str, sha256: str) -> LoadedModel:
    """Version ``version`` from ``model_dir``, loaded once per process and only if its artifact's
    sha256 is ``sha256``: a worker never scores with another model than the one asked for."""
    key = (model_dir, version, sha256)
    with _pinned_lock:  # threads of one worker wait for the first load rather than repeat it
        model = _pinned.get(key)
        if model is None:
            model = Modeler(model_dir).saved_version(version)  # verified as the service loads it
            actual = model.metadata["artifact"].get("sha256")
            if actual != sha256:
                raise ModelIntegrityError(
                    f"version {version!r} in {model_dir} has sha256 {str(actual)[:12]}…, "
                    f"expected {sha256[:12]}…: this worker has another model file"
                )
            _ = model.estimator  # unpickled (its file checked against that hash) once, under the lock
            _pinned[key] = model
        return model


def pinned_loads() -> int:
    """How many pinned models this process has loaded (a worker should load each once)."""
    return len(_pinned)
