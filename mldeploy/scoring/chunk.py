"""Scoring one chunk of a file: the good rows get the model's answers as output columns, the bad
ones are listed with their row, field, problem and value (:mod:`modeler.batch` checks them).

The output's columns are the input's, then the answer, under the keys every surface uses
(:mod:`mldeploy.contract`): for a classifier ``Class`` (the label in its own type) and, when the
model has them, one probability column per class, named by the class; for a regressor
``Prediction``. Then per row the ``ModelVersion`` that scored it and the ``Warnings``: the fields
outside their training range or holding a category not seen in training, as ``POST /predict``
names them in its ``Warnings`` for that row. The same for local chunks and Dask partitions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mldeploy.api.model_schema import model_schema
from mldeploy.contract import CLASS, MODEL_VERSION, PREDICTION, WARNINGS
from modeler.batch import CheckedFrame, check_frame
from modeler.errors import MISSING, FieldError, InvalidInput
from modeler.loaded_model import LoadedModel
from modeler.predictors.base import PROBABILITIES, VALUE
from modeler.ranges import out_of_range
from modeler.schema import TEXT

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


def answer_columns(model: LoadedModel) -> tuple[str, ...]:
    """The columns the answer adds: ``Prediction`` for a regressor; ``Class`` and, when the model
    has probabilities, one column per class (the label as text) for a classifier."""
    predictor = model.predictor
    if predictor.can(VALUE):
        return (PREDICTION,)
    if predictor.can(PROBABILITIES):
        return (CLASS, *(str(c) for c in model.classes))
    return (CLASS,)


def text_fields(model: LoadedModel) -> tuple[str, ...]:
    """The fields a CSV reader must keep as text (a text field's "5" is the text "5")."""
    return tuple(f.name for f in model_schema(model).fields if f.type == TEXT)


def check_columns(columns: Sequence[object], features: Sequence[str], outputs: Sequence[str]) -> None:
    """Raise :class:`InvalidInput` when a feature column is absent or an input column would be
    overwritten by an output column (``outputs``: :func:`answer_columns`). Extra columns are fine:
    they are carried through."""
    names = [str(c) for c in columns]
    errors = [FieldError(None, f, MISSING) for f in features if f not in names]
    errors += [FieldError(None, c, CLASHES) for c in names if c in (*outputs, *ADDED_COLUMNS)]
    if errors:
        raise InvalidInput(errors, "The input's columns do not fit the model")


def score_frame(model: LoadedModel, frame: pd.DataFrame, first_row: int = 0, *, text: bool) -> ScoredChunk:
    """Score one chunk: good rows get the answer columns (:func:`answer_columns`), ``ModelVersion``
    and ``Warnings``, in input order; bad rows are left out and reported. ``first_row`` numbers
    the chunk's rows in the file; ``text`` says its cells are text (a CSV) rather than typed values
    (JSON lines, Parquet).

    Feature columns in the output hold the values the model saw (numbers as floats, text as
    text); other columns are the input's as they were.
    """
    features, outputs = model.features, answer_columns(model)
    check_columns(frame.columns, features, outputs)
    frame = frame.set_axis([str(c) for c in frame.columns], axis=1)
    checked = check_frame(frame, features, first_row, text=text)
    scored = frame.reset_index(drop=True) if not checked.failed_rows else frame.loc[checked.good].reset_index(drop=True)
    values = checked.values
    for j, name in enumerate(features):
        scored[name] = values[name].to_numpy() if isinstance(values, pd.DataFrame) else values[:, j]
    rows = len(values)
    answers = model.predictor.answer(values, single=False, use_estimator=True) if rows else None
    if outputs == (PREDICTION,):
        scored[PREDICTION] = answers.values() if answers is not None else np.zeros(0)
    else:
        labels = answers.label_array() if answers is not None else np.zeros(0, dtype=object)
        scored[CLASS] = pd.Series(labels, dtype=object)
        if len(outputs) > 1:
            probabilities = answers.probabilities() if answers is not None else np.zeros((0, len(outputs) - 1))
            for j, name in enumerate(outputs[1:]):
                scored[name] = probabilities[:, j]
    # Object columns, as Class is: the same types in every chunk (Parquet needs one schema).
    scored[MODEL_VERSION] = pd.Series(filled(len(scored), model.version), dtype=object, copy=False)
    scored[WARNINGS] = pd.Series(warned_fields(checked, model), dtype=object, copy=False)
    return ScoredChunk(scored, checked.errors, rows=len(frame), failed_rows=checked.failed_rows)


def warned_fields(checked: CheckedFrame, model: LoadedModel) -> np.ndarray:
    """Per good row, the fields ``POST /predict`` would warn about (out of range, or a category not
    seen in training) joined by :data:`WARNING_SEPARATOR`, or ``""`` for a row with none."""
    values = checked.values
    cells = filled(len(values), "")
    if isinstance(values, pd.DataFrame):  # typed rows: the numbers checked against their ranges
        numeric = [f.name for f in model_schema(model).fields if f.numeric]
        ranges = [r for name, r in zip(model.features, model.ranges, strict=True) if name in numeric]
        found_by_row = out_of_range(values[numeric].to_numpy(dtype=np.float64), numeric, ranges)
    else:
        found_by_row = out_of_range(values, model.features, model.ranges)
    for row, found in found_by_row.items():
        cells[row] = WARNING_SEPARATOR.join(w.field for w in found)
    return cells


def filled(rows: int, value: str) -> np.ndarray:
    """An object array of ``rows`` times ``value`` (``np.full`` takes some 50 times longer for objects)."""
    cells = np.empty(rows, dtype=object)
    cells.fill(value)
    return cells
