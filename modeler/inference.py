"""The outcome of one prediction call, tied to the version that computed it."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from modeler.explanation import Explanation
from modeler.predictors.base import Answers, Predictor
from modeler.ranges import Range, RangeWarning, out_of_range
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

    def __repr__(self) -> str:
        return f"Inference(version={self.version!r}, rows={len(self.answers)}, single={self.single})"

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names, in the order of the probability columns."""
        return self.predictor.classes

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
        """``{row index: warnings}`` for rows with a feature outside its training range."""
        return out_of_range(self.rows, self.features, self.ranges)

    def explanations(self) -> list[Explanation]:
        """Why each row got its answer, in input order."""
        return self.predictor.explain(self.features, self.rows)
