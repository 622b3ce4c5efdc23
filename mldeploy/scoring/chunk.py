"""Scoring one chunk of a file: the good rows get the model's answers as output columns, the bad
ones are listed with their row, field, problem and value (:mod:`modeler.batch` checks them).

The output's columns are the input's, then ``Class`` (:data:`mldeploy.contract.CLASS`, the
answer key every surface uses) and one probability column per class, named by the class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mldeploy.contract import CLASS
from modeler.batch import check_frame
from modeler.errors import MISSING, FieldError, InvalidInput
from modeler.loaded_model import LoadedModel

CLASHES = "clashes with an output column: rename it"


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
    errors += [FieldError(None, c, CLASHES) for c in names if c in (CLASS, *classes)]
    if errors:
        raise InvalidInput(errors, "The input's columns do not fit the model")


def score_frame(model: LoadedModel, frame: pd.DataFrame, first_row: int = 0, *, text: bool) -> ScoredChunk:
    """Score one chunk: good rows get ``Class`` and one probability column per class, in input
    order; bad rows are left out and reported. ``first_row`` numbers the chunk's rows in the file;
    ``text`` says its cells are text (a CSV) rather than typed values (JSON lines, Parquet).

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
    return ScoredChunk(scored, checked.errors, rows=len(frame), failed_rows=checked.failed_rows)
