"""The outcome of one prediction call, tied to the version that computed it."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from modeler.explanation import Explanation
from modeler.loaded_model import CLASSIFICATION, REGRESSION
from modeler.predictors.base import VALUE, Answers, Predictor
from modeler.ranges import Range, RangeWarning, out_of_range
from modeler.schema import Schema
from modeler.validation import Rows


class Inference(NamedTuple):
    """What :meth:`Modeler.infer` computed: the validated rows and the predictor's answers.

    A named tuple: immutable, and built in a fraction of a frozen dataclass's time (it is made
    once per prediction, and a single-row prediction takes a few microseconds).
    """

    version: str
    features: tuple[str, ...]
    rows: Rows
    single: bool
    answers: Answers
    predictor: Predictor
    ranges: tuple[Range, ...] = ()
    # Set for a schema that is not plain numbers: rows then hold typed values (None for a null).
    schema: Schema | None = None

    def __repr__(self) -> str:
        return f"Inference(version={self.version!r}, rows={len(self.answers)}, single={self.single})"

    @property
    def classes(self) -> tuple:
        """Class labels, in the order of the probability columns (() for a regressor)."""
        return self.predictor.classes

    @property
    def task(self) -> str:
        """``classification`` or ``regression``."""
        return REGRESSION if self.predictor.can(VALUE) else CLASSIFICATION

    def values(self) -> np.ndarray:
        """A regressor's value per row (float64)."""
        return self.answers.values()

    def input_rows(self) -> list[dict]:
        """Each row as ``{field: value}`` in the field's JSON type (None for a missing value)."""
        rows = self.rows.tolist() if isinstance(self.rows, np.ndarray) else self.rows
        if self.schema is None:
            return [dict(zip(self.features, row, strict=True)) for row in rows]
        return [
            {name: (None if v is not None and v != v else v) for name, v in zip(self.features, row, strict=True)}
            for row in rows
        ]

    @property
    def labels(self) -> list[str]:
        """Predicted class per row."""
        return self.answers.labels()

    @property
    def probabilities(self) -> np.ndarray:
        """Class probabilities, one row per input row."""
        return self.answers.probabilities()

    def label_array(self) -> np.ndarray:
        """Predicted class per row as a numpy object array: one gather, fast for millions of rows."""
        return self.answers.label_array()

    def probability_dicts(self) -> list[dict[str, float]]:
        """Class probabilities per row as ``{class: probability}`` dicts."""
        return self.answers.probability_dicts()

    def out_of_range(self) -> dict[int, list[RangeWarning]]:
        """``{row index: warnings}`` for rows with a feature outside its training range, or (a
        text or boolean field) a category not seen in training (a CategoryWarning)."""
        if self.schema is not None:
            from modeler.typed_validation import unusual_values

            return unusual_values(self.rows, self.schema)
        return out_of_range(self.rows, self.features, self.ranges)

    def explanations(self) -> list[Explanation]:
        """Why each row got its answer, in input order."""
        return self.predictor.explain(self.features, self.rows)
