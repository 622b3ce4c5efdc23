"""The general predictor: any fitted scikit-learn estimator or Pipeline, called once per request.

The request's rows, already checked against the schema, become one DataFrame (for a model fitted
on named columns, each column in its field's dtype) or one array (a model fitted on a bare array),
and the estimator's own ``predict`` / ``predict_proba`` answer them all in one call: no per-row
Python work, and the answers are the estimator's by construction.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from modeler.predictors.base import LABELS, PROBABILITIES, VALUE, ArrayAnswers, Predictor
from modeler.schema import BOOLEAN, INTEGER, NUMBER, Schema
from modeler.typed_columns import TypedColumns

if TYPE_CHECKING:
    from modeler.validation import Rows

CLASSIFICATION = "classification"
REGRESSION = "regression"


def task_of(estimator: object) -> str:
    """``classification`` or ``regression``; ValueError for anything else (a clusterer, a
    transformer): mldeploy serves what answers a label or a value."""
    from sklearn.base import is_classifier, is_regressor

    if is_classifier(estimator):
        return CLASSIFICATION
    if is_regressor(estimator):
        return REGRESSION
    raise ValueError(f"a {type(estimator).__name__} is neither a classifier nor a regressor")


def _same_types(a: Schema, b: Schema) -> bool:
    """Whether two schemas take the same fields in the same order, of the same types and nulls."""
    return a is b or [(f.name, f.type, f.nullable) for f in a.fields] == [
        (f.name, f.type, f.nullable) for f in b.fields
    ]


class GeneralPredictor(Predictor):
    """Any fitted estimator or Pipeline; ``schema`` says how to build its input."""

    kind = "general"
    name = "general"

    def __init__(
        self, schema: Schema, task: str, classes: tuple, has_proba: bool, load_estimator: Callable[[], object]
    ):
        self.schema = schema
        self.task = task
        self.classes = classes
        if task == REGRESSION:
            self.capabilities = frozenset({VALUE})
        else:
            self.capabilities = frozenset({LABELS, PROBABILITIES} if has_proba else {LABELS})
        self.accepts_missing = any(f.nullable for f in schema.fields)
        self._load_estimator = load_estimator
        self._named = not schema.positional

    @classmethod
    def from_estimator(cls, estimator: object, schema: Schema) -> GeneralPredictor:
        """The predictor of an estimator at hand."""
        task = task_of(estimator)
        classes = tuple(np.asarray(estimator.classes_).tolist()) if task == CLASSIFICATION else ()
        return cls(schema, task, classes, hasattr(estimator, "predict_proba"), lambda: estimator)

    @functools.cached_property
    def estimator(self) -> object:
        """The fitted estimator, unpickled (after the version's checks) on first use."""
        return self._load_estimator()

    def _input(self, rows: Rows | TypedColumns) -> object:
        """One DataFrame in the fields' dtypes (named models) or one array (positional ones)."""
        if isinstance(rows, TypedColumns):
            return self._input_of_columns(rows)
        fields = self.schema.fields
        if isinstance(rows, np.ndarray) or all(f.type == NUMBER and not f.nullable for f in fields):
            X = np.asarray(rows, dtype=np.float64)
            if not self._named:
                return X
            import pandas as pd

            return pd.DataFrame(X, columns=list(self.schema.names), copy=False)
        import pandas as pd

        if not self._named and all(f.numeric for f in fields):
            return np.array(rows, dtype=np.float64)  # None becomes NaN
        frame = pd.DataFrame(rows, columns=list(self.schema.names), dtype=object)
        for field in fields:
            column = frame[field.name]
            if field.type == NUMBER or (field.type == INTEGER and field.nullable):
                frame[field.name] = column.astype(np.float64)
            elif field.type == INTEGER:
                frame[field.name] = column.astype(np.int64)
            elif field.type == BOOLEAN and not field.nullable:
                frame[field.name] = column.astype(bool)
            else:  # text (None stays None, as a missing value in an object column)
                frame[field.name] = column.where(column.notna(), np.nan) if field.nullable else column
        return frame if self._named else frame.to_numpy(dtype=object)

    def _input_of_columns(self, batch: TypedColumns) -> object:
        """The input built from a batch validated column by column: each column is already in its
        field's dtype (the same frame as from its rows), so the DataFrame is put together once,
        with no work per row. A batch validated against another schema (a rollout's other
        version) is built from its rows by this one's."""
        if not _same_types(batch.schema, self.schema):
            return self._input(batch.tolist())
        import pandas as pd

        if not self._named:
            if all(f.numeric for f in self.schema.fields):
                return np.asarray(batch, dtype=np.float64)  # a null is NaN
            return self._input(batch.tolist())
        # An object column stays one (pandas would otherwise infer its string dtype for text).
        # The frame copies the columns: the batch is kept (the prediction log writes it later).
        return pd.DataFrame(
            {
                name: pd.Series(column, dtype=object) if column.dtype == object else column
                for name, column in zip(self.schema.names, batch.frame_columns, strict=True)
            }
        )

    @functools.cached_property
    def _final(self) -> tuple[object | None, object]:
        """``(the steps before the last, the last)`` of a Pipeline, else ``(None, estimator)``:
        labels and probabilities then share one transform, as each of Pipeline's own
        ``predict`` and ``predict_proba`` runs it (the same steps, in the same order)."""
        from sklearn.pipeline import Pipeline

        estimator = self.estimator
        if isinstance(estimator, Pipeline) and len(estimator.steps) > 1 and PROBABILITIES in self.capabilities:
            return estimator[:-1], estimator.steps[-1][1]
        return None, estimator

    def answer(self, rows: Rows, *, single: bool, use_estimator: bool = False) -> ArrayAnswers:
        """One call of the estimator's ``predict`` (and ``predict_proba``) for all ``rows``."""
        X = self._input(rows)
        estimator = self.estimator
        if self.task == REGRESSION:
            return ArrayAnswers((), values=np.asarray(estimator.predict(X), dtype=np.float64))
        if PROBABILITIES not in self.capabilities:
            return ArrayAnswers(self.classes, np.asarray(estimator.predict(X)))
        steps, final = self._final
        if steps is not None:
            X = steps.transform(X)
        probabilities = np.asarray(final.predict_proba(X), dtype=np.float64)
        return ArrayAnswers(self.classes, np.asarray(final.predict(X)), probabilities)
