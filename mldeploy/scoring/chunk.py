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

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mldeploy.contract import CLASS, MODEL_VERSION, PREDICTION, WARNINGS
from modeler.batch import ERROR_COLUMNS, MAX_VALUE_CHARS, CheckedFrame, check_frame
from modeler.cells import BOOLEAN_TEXT, CODE, NULL, PROBLEMS, text_cells, typed_cells
from modeler.errors import MISSING, FieldError, InvalidInput
from modeler.loaded_model import LoadedModel
from modeler.predictors.base import PROBABILITIES, VALUE
from modeler.ranges import out_of_range
from modeler.schema import BOOLEAN, INTEGER, TEXT, Field, Schema
from modeler.typed_validation import NOT_AN_INTEGER, cell, unusual_values

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
    return tuple(f.name for f in model.schema.fields if f.type == TEXT)


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
    schema = model.schema
    if schema.numeric_only:  # the vectorised path of plain numbers (the default model's)
        checked = check_frame(frame, features, first_row, text=text)
    else:
        checked = check_typed_frame(frame, schema, first_row, text=text)
    scored = frame.reset_index(drop=True) if not checked.failed_rows else frame.loc[checked.good].reset_index(drop=True)
    values = checked.values
    for j, name in enumerate(features):
        if isinstance(values, np.ndarray):
            scored[name] = values[:, j]
        else:  # typed rows: numbers as floats, text as text, None where missing
            scored[name] = pd.Series([row[j] for row in values], dtype=object)
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
    if isinstance(values, np.ndarray):
        found_by_row = out_of_range(values, model.features, model.ranges)
    else:
        found_by_row = unusual_values(values, model.schema)
    for row, found in found_by_row.items():
        cells[row] = WARNING_SEPARATOR.join(w.field for w in found)
    return cells


def _file_cell(value: object, field: Field, text: bool) -> tuple[object, str | None]:
    """One cell of a file for a text or boolean field, by the modeler's rules for typed values
    (:func:`modeler.typed_validation.cell`). A CSV holds text, so there a boolean field's cell is
    ``true`` or ``false`` in any case; an absent value is ``missing``, as for numbers in files."""
    if text and field.type == BOOLEAN and isinstance(value, str):
        lowered = value.strip().lower()
        value = lowered == "true" if lowered in BOOLEAN_TEXT else value
    converted, problem = cell(value, field)
    return converted, (MISSING if problem == NULL else problem)


def check_typed_frame(frame: pd.DataFrame, schema: Schema, first_row: int = 0, *, text: bool) -> CheckedFrame:
    """:func:`modeler.batch.check_frame` for a schema that is not plain numbers: number fields by
    the cell rules of files (:mod:`modeler.cells`; a missing cell is fine where the model takes
    null), text and boolean fields cell by cell. The good rows' values are typed rows in field
    order (floats, ints, text, booleans, None for a missing value), as ``Modeler.infer`` gives them."""
    columns: list[list[object]] = []
    problems: list[np.ndarray] = []
    for field in schema.fields:
        column = frame[field.name]
        found = np.empty(len(column), dtype=object)
        if field.numeric:
            numbers, codes = (text_cells if text else typed_cells)(column)
            found[:] = np.asarray(PROBLEMS, dtype=object)[codes]
            absent = codes == CODE[MISSING]
            if field.nullable:
                found[absent] = None
            converted: list[object] = [None if a else v for a, v in zip(absent.tolist(), numbers.tolist(), strict=True)]
            if field.type == INTEGER:
                for i, v in enumerate(converted):
                    if v is not None and found[i] is None:
                        if float(v).is_integer():
                            converted[i] = int(v)
                        else:
                            found[i] = NOT_AN_INTEGER
        else:
            converted = []
            for i, value in enumerate(column.to_numpy(dtype=object).tolist()):
                typed, found[i] = _file_cell(value, field, text)
                converted.append(typed)
        columns.append(converted)
        problems.append(found)
    bad = np.zeros(len(frame), dtype=bool)
    for found in problems:
        bad |= np.not_equal(found, None)
    good = ~bad
    rows = [list(row) for row, ok in zip(zip(*columns, strict=True), good.tolist(), strict=True) if ok]
    return CheckedFrame(good, rows, _typed_errors(frame, schema, problems, first_row), int(bad.sum()))  # type: ignore[arg-type]


def _typed_errors(frame: pd.DataFrame, schema: Schema, problems: list[np.ndarray], first_row: int) -> pd.DataFrame:
    """One line per bad field (row order, then field order), as :mod:`modeler.batch` writes them."""
    lines = []
    for j, field in enumerate(schema.fields):
        cells = frame[field.name].to_numpy(dtype=object)
        for i in np.flatnonzero(np.not_equal(problems[j], None)).tolist():
            value = cells[i]
            missing = value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
            shown = "" if missing else str(value)
            if len(shown) > MAX_VALUE_CHARS:
                shown = shown[: MAX_VALUE_CHARS - 1] + "…"
            lines.append((i + first_row, field.name, problems[j][i], shown))
    errors = pd.DataFrame(lines, columns=list(ERROR_COLUMNS))
    if not lines:
        return errors.astype({"row": np.int64})
    return errors.sort_values("row", kind="stable", ignore_index=True)


def filled(rows: int, value: str) -> np.ndarray:
    """An object array of ``rows`` times ``value`` (``np.full`` takes some 50 times longer for objects)."""
    cells = np.empty(rows, dtype=object)
    cells.fill(value)
    return cells
