"""Scoring one chunk of a file: the good rows get the model's answers as output columns, the bad
ones are listed with their row, field, problem and value (:mod:`modeler.batch` checks them).

The output's columns are the input's, then ``Class`` (:data:`mldeploy.contract.CLASS`, the
answer key every surface uses), one probability column per class, named by the class, then per
row the ``ModelVersion`` that scored it and the ``Warnings``: the fields outside their training
range, as ``POST /predict`` names them in its ``Warnings`` for that row. The same for local chunks
and Dask partitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mldeploy.contract import CLASS, MODEL_VERSION, WARNINGS
from modeler.batch import check_frame
from modeler.errors import MISSING, FieldError, InvalidInput
from modeler.loaded_model import LoadedModel
from modeler.ranges import out_of_range

CLASHES = "clashes with an output column: rename it"
# The output columns added after the answers; an input column of these names is refused.
ADDED_COLUMNS = (MODEL_VERSION, WARNINGS)
# Between field names in a Warnings cell. Feature names with spaces are common (scikit-learn's
# own Iris names them "petal length (cm)"), semicolons are not; a CSV cell needs no quotes for it.
WARNING_SEPARATOR = ";"


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
    errors += [FieldError(None, c, CLASHES) for c in names if c in (CLASS, *classes, *ADDED_COLUMNS)]
    if errors:
        raise InvalidInput(errors, "The input's columns do not fit the model")


def score_frame(model: LoadedModel, frame: pd.DataFrame, first_row: int = 0, *, text: bool) -> ScoredChunk:
    """Score one chunk: good rows get ``Class``, one probability column per class, ``ModelVersion``
    and ``Warnings``, in input order; bad rows are left out and reported. ``first_row`` numbers
    the chunk's rows in the file; ``text`` says its cells are text (a CSV) rather than typed values
    (JSON lines, Parquet).

    Feature columns in the output hold the values the model saw (as floats); other columns are
    the input's as they were.
    """
    features, classes = model.features, model.classes
    check_columns(frame.columns, features, classes)
    frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
    checked = check_frame(frame, features, first_row, text=text)
    scored = frame.reset_index(drop=True) if not checked.failed_rows else frame.loc[checked.good].reset_index(drop=True)
    for j, name in enumerate(features):
        scored[name] = checked.values[:, j]
    if len(checked.values):
        answers = model.predictor.answer(checked.values, single=False, use_estimator=True)
        labels, probabilities = answers.label_array(), answers.probabilities()
    else:
        labels, probabilities = np.zeros(0, dtype=object), np.zeros((0, len(classes)))
    scored[CLASS] = pd.Series(labels, dtype=object)
    for j, name in enumerate(classes):
        scored[name] = probabilities[:, j]
    # Object columns, as Class is: the same types in every chunk (Parquet needs one schema).
    scored[MODEL_VERSION] = pd.Series(filled(len(scored), model.version), dtype=object, copy=False)
    scored[WARNINGS] = pd.Series(out_of_range_fields(checked.values, model), dtype=object, copy=False)
    return ScoredChunk(scored, checked.errors, rows=len(frame), failed_rows=checked.failed_rows)


def out_of_range_fields(values: np.ndarray, model: LoadedModel) -> np.ndarray:
    """Per row of ``values`` (features in model order), the out-of-range fields joined by
    :data:`WARNING_SEPARATOR`, or ``""`` for a row with none (modeler.ranges decides, as for /predict)."""
    cells = filled(len(values), "")
    for row, found in out_of_range(values, model.features, model.ranges).items():
        cells[row] = WARNING_SEPARATOR.join(w.field for w in found)
    return cells


def filled(rows: int, value: str) -> np.ndarray:
    """An object array of ``rows`` times ``value`` (``np.full`` takes some 50 times longer for objects)."""
    cells = np.empty(rows, dtype=object)
    cells.fill(value)
    return cells
