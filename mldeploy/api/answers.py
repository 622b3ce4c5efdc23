"""The answer to a prediction request, built in one place for every surface that gives it: the
HTTP ``/predict`` resource and ``python -m mldeploy predict`` (the Python client reads HTTP's).

One row answers ``{Class, Input, Probabilities, ModelVersion}``; a batch answers
``{Predictions: [{Class, Probabilities}, ...], ModelVersion}`` in input order. ``Class`` is the
label in its own JSON type (an integer label is a JSON integer); ``Probabilities`` is there only
when the model has them (``predict_proba``); a regressor answers ``Prediction`` (a number) instead
of both. A row with a feature outside its training range, or a category not seen in training,
also gets ``Warnings``, and every row an ``Explanation`` when one is asked for (a model that gives
none answers ``explain`` with a 400). The keys are :mod:`mldeploy.contract`'s; the values come
from the predictor's answers, whatever kind of model gave them.

``serialised=True`` (HTTP, whose responses orjson writes) uses pre-serialised JSON where the
predictor answers from a fixed table (a tree's leaves): each entry's JSON is serialised once per
version and kept with the predictor's table, so a row of a batch costs one list look-up.
"""

from __future__ import annotations

from itertools import repeat
from typing import NamedTuple

import numpy as np
import orjson

from mldeploy.contract import (
    CLASS,
    EXPLANATION,
    INPUT,
    MODEL_VERSION,
    PREDICTION,
    PREDICTIONS,
    PROBABILITIES,
    WARNINGS,
)
from modeler.errors import FieldError, InvalidInput
from modeler.inference import Inference
from modeler.predictors import base
from modeler.predictors.base import AnswerTable, ArrayAnswers, RowAnswers
from modeler.ranges import RangeWarning

# This module's key for what it keeps in a predictor's answer table.
_FRAGMENTS_KEY = __name__


class EntryFragments:
    """Per entry of an answer table: its probabilities and its batch prediction as JSON fragments."""

    def __init__(self, table: AnswerTable) -> None:
        self.labels = table.labels
        self.probabilities = [orjson.Fragment(orjson.dumps(p)) for p in table.probability_dicts]
        self.predictions = [
            orjson.Fragment(orjson.dumps({CLASS: label, PROBABILITIES: p}))
            for label, p in zip(table.labels, table.probability_dicts, strict=True)
        ]

    def prediction_dict(self, entry: int) -> dict:
        """A batch prediction as a dict of its own, for a row that carries more (warnings, paths)."""
        return {CLASS: self.labels[entry], PROBABILITIES: self.probabilities[entry]}


def entry_fragments(table: AnswerTable) -> EntryFragments:
    """The pre-serialised answers of ``table``'s entries, built once per table (so per version)."""
    return table.rendered(_FRAGMENTS_KEY, EntryFragments)


class AnswerColumns(NamedTuple):
    """A batch's answers as columns: a regressor's ``values``, or a classifier's ``labels`` (and,
    when it has them, its ``probabilities`` with their ``keys``). What the prediction log keeps
    of a batch answered by arrays, and what the rows are built from."""

    labels: list | None = None
    keys: list[str] | None = None
    probabilities: np.ndarray | None = None
    values: np.ndarray | None = None


def answer_columns(result: Inference) -> AnswerColumns | None:
    """``result``'s answers as columns when they are arrays (:class:`ArrayAnswers`), else None."""
    answers = result.answers
    if not isinstance(answers, ArrayAnswers):
        return None
    if result.predictor.can(base.VALUE):  # a regressor: one number per row
        return AnswerColumns(values=answers.values())
    if not result.predictor.can(base.PROBABILITIES):
        return AnswerColumns(labels=answers.labels())
    return AnswerColumns(answers.labels(), [str(c) for c in answers.classes], answers.probabilities())


def rows_of_columns(columns: AnswerColumns) -> list[dict]:
    """One ``{Prediction}``, ``{Class}`` or ``{Class, Probabilities}`` per row of ``columns``."""
    if columns.values is not None:
        return [{PREDICTION: value} for value in columns.values.tolist()]
    if columns.probabilities is None:
        return [{CLASS: label} for label in columns.labels]
    return _class_rows(columns.labels, columns.probabilities, columns.keys)


def plain_rows(result: Inference) -> list[dict]:
    """One ``{Prediction}``, ``{Class}`` or ``{Class, Probabilities}`` per row, as the model can."""
    answers = result.answers
    if type(answers) is RowAnswers:  # one row's Python values: no numpy on the way to JSON
        if answers.value is not None:
            return [{PREDICTION: answers.value}]
        if answers.probability_values is None:
            return [{CLASS: answers.label_value}]
        return [{CLASS: answers.label_value, PROBABILITIES: answers.probability_dicts()[0]}]
    columns = answer_columns(result)
    if columns is not None:
        return rows_of_columns(columns)
    if result.predictor.can(base.VALUE):
        return [{PREDICTION: value} for value in answers.values().tolist()]
    labels = answers.labels()
    if not result.predictor.can(base.PROBABILITIES):
        return [{CLASS: label} for label in labels]
    return [{CLASS: label, PROBABILITIES: p} for label, p in zip(labels, answers.probability_dicts(), strict=True)]


def _class_rows(labels: list, probabilities: np.ndarray, keys: list[str]) -> list[dict]:
    """``{Class, Probabilities: {key: probability}}`` per row, as ``ArrayAnswers.probability_dicts``
    keys them, built from the probability columns: for a batch of thousands this is most of the
    answer's cost, and a dict display per row (two classes, the common case) is the fastest."""
    columns = np.asarray(probabilities, dtype=np.float64).T.tolist()
    if len(keys) == 2:
        a, b = keys
        return [{CLASS: label, PROBABILITIES: {a: x, b: y}} for label, x, y in zip(labels, *columns, strict=True)]
    dicts = map(dict, map(zip, repeat(keys), zip(*columns, strict=True)))
    return [{CLASS: label, PROBABILITIES: p} for label, p in zip(labels, dicts, strict=True)]


def predict_answer(
    result: Inference,
    *,
    explain: bool = False,
    warnings: dict[int, list[RangeWarning]] | None = None,
    serialised: bool = False,
) -> dict:
    """The answer body for ``result``. ``warnings`` are ``result.out_of_range()`` when the caller
    has them already (it counts them); ``explain`` adds each row's ``Explanation`` (InvalidInput
    naming ``explain`` when the predictor gives none)."""
    if explain:
        check_explainable(result)
    if warnings is None:
        warnings = result.out_of_range()
    found = result.answers.table_entries() if serialised else None
    if result.single:
        echo = input_echo(result)
        if found is not None:  # the common request: no dict but the body itself
            table, (entry,) = found
            probabilities = entry_fragments(table).probabilities[entry]
            body = {
                CLASS: table.labels[entry],
                INPUT: echo,
                PROBABILITIES: probabilities,
                MODEL_VERSION: result.version,
            }
        else:
            (row,) = plain_rows(result)
            key = PREDICTION if PREDICTION in row else CLASS
            body = {key: row.pop(key), INPUT: echo, **row, MODEL_VERSION: result.version}
        _annotate(result, [body], explain, warnings)
        return body
    if found is None:
        predictions = plain_rows(result)
    else:
        table, entries = found
        fragments = entry_fragments(table)
        if explain:  # every row gets an explanation: plain dicts throughout
            predictions = [fragments.prediction_dict(entry) for entry in entries]
        else:
            predictions = [fragments.predictions[entry] for entry in entries]
            for row in warnings:  # rows that get warnings need a dict to carry them
                predictions[row] = fragments.prediction_dict(entries[row])
    _annotate(result, predictions, explain, warnings)
    return {PREDICTIONS: predictions, MODEL_VERSION: result.version}


def check_explainable(result: Inference) -> None:
    """InvalidInput naming ``explain`` when the predictor gives no explanations (a 400 over HTTP)."""
    if not result.predictor.can(base.EXPLANATION):
        raise InvalidInput(
            [FieldError(None, base.EXPLAIN_FIELD, f"a {result.predictor.kind} model gives no explanations")]
        )


def input_echo(result: Inference) -> dict:
    """The one row as the model read it, ``{field: value}`` in each field's JSON type (None for a
    missing value); the rows of a model of plain numbers are floats already."""
    rows = getattr(result, "input_rows", None)
    if rows is not None:
        return rows()[0]
    return dict(zip(result.features, result.rows[0], strict=True))


def _annotate(result: Inference, predictions: list, explain: bool, warnings: dict[int, list[RangeWarning]]) -> None:
    """Add ``Warnings`` to the predictions ``warnings`` names and, if asked, an ``Explanation``
    to each, in place (only those must be dicts)."""
    for row, found in warnings.items():
        predictions[row][WARNINGS] = [w.as_dict() for w in found]
    if explain:
        for prediction, explanation in zip(predictions, result.explanations(), strict=True):
            prediction[EXPLANATION] = explanation.as_dict()
