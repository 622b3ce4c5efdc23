"""Checking a table of rows where bad rows are set aside instead of failing the whole table.

This is the modeler's half of ``python -m mldeploy score``, for local chunks and Dask partitions
alike: :func:`check_frame` takes one chunk, converts its feature columns by the cell rules of
:mod:`modeler.cells` (text cells for a CSV, typed values otherwise) and lists every bad field
with its row number, problem and value; the good rows go to the predictor. What the output
holds and how its columns are named is the service's (``mldeploy.scoring``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from modeler.cells import OK, PROBLEMS, text_cells, typed_cells
from modeler.errors import ModelIntegrityError
from modeler.loaded_model import LoadedModel

ERROR_COLUMNS = ("row", "field", "problem", "value")
# Keep an errors file readable when a cell holds a whole paragraph.
MAX_VALUE_CHARS = 200


@dataclass(frozen=True)
class CheckedFrame:
    """One chunk, checked: which rows are usable, their feature values, and the bad fields."""

    good: np.ndarray  # bool per row
    values: np.ndarray  # float64 [good rows, features], in model order
    errors: pd.DataFrame  # ERROR_COLUMNS, one line per bad field
    failed_rows: int


def feature_values(
    frame: pd.DataFrame, features: Sequence[str], *, text: bool
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The features as a float array, and per feature a problem code per row (0 if usable; the
    problem is ``PROBLEMS[code]``). ``text``: the cells are text (a CSV), not typed values."""
    cells = text_cells if text else typed_cells
    values = np.empty((len(frame), len(features)), dtype=np.float64)
    codes: dict[str, np.ndarray] = {}
    for j, name in enumerate(features):
        values[:, j], codes[name] = cells(frame[name])
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


def check_frame(frame: pd.DataFrame, features: Sequence[str], first_row: int = 0, *, text: bool) -> CheckedFrame:
    """Check one chunk (its columns named as strings): ``first_row`` numbers its rows in the file;
    ``text`` says its cells are text (a CSV) rather than typed values (JSON lines, Parquet)."""
    values, codes = feature_values(frame, features, text=text)
    bad = np.zeros(len(frame), dtype=bool)
    for found in codes.values():
        bad |= found != OK
    good = ~bad
    return CheckedFrame(good, values[good], _error_table(frame, codes, first_row), int(bad.sum()))


# -- one model per process, pinned by its hash (Dask workers) -----------------------------------

_pinned: dict[tuple[str, str, str], LoadedModel] = {}
_pinned_lock = threading.Lock()


def load_pinned(model_dir: str, version: str, sha256: str) -> LoadedModel:
    """Version ``version`` from ``model_dir``, loaded once per process and only if its artifact's
    sha256 is ``sha256``: a worker never scores with another model than the one asked for."""
    from modeler.modeler import Modeler

    key = (model_dir, version, sha256)
    with _pinned_lock:  # threads of one worker wait for the first load rather than repeat it
        model = _pinned.get(key)
        if model is None:
            model = Modeler(model_dir).saved_version(version)  # verified as the service loads it
            actual = model.metadata["artifact"].get("sha256")
            if actual != sha256:
                raise ModelIntegrityError(
                    f"version {version!r} has sha256 {str(actual)[:12]}…, "
                    f"expected {sha256[:12]}…: this worker has another model file",
                    path=model_dir,
                )
            _ = model.estimator  # unpickled (its file checked against that hash) once, under the lock
            _pinned[key] = model
        return model


def pinned_loads() -> int:
    """How many pinned models this process has loaded (a worker should load each once)."""
    return len(_pinned)
