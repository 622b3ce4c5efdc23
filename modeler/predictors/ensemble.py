"""The compiled tree ensemble: forests and boosting answered from saved arrays, no scikit-learn.

:class:`~modeler.compiled_ensemble.CompiledEnsemble` holds the flattened trees (saved beside the
pickle as ``ensemble.bin``) and answers exactly as the estimator does; this predictor puts it
behind the predictor seam: one row walks the trees as generated Python (modeler/ensemble_walk.py),
a batch takes the bit-vector path, and an explanation is each feature's contribution (bias +
contributions = the answer).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from modeler.compiled_ensemble import CompiledEnsemble, Contributions
from modeler.predictors.base import (
    EXPLANATION,
    LABELS,
    PROBABILITIES,
    VALUE,
    ArrayAnswers,
    Predictor,
    RowAnswers,
)

if TYPE_CHECKING:
    from modeler.validation import Rows


@dataclass(frozen=True)
class ContributionExplanation:
    """Why one row got its answer from an ensemble: each feature's contribution, and the bias."""

    contributions: Contributions
    features: tuple[str, ...]

    def as_dict(self) -> dict:
        """JSON-ready: ``output`` (the explained class, or None), ``space``, ``answer``, ``bias``
        and ``contributions`` by feature; bias + contributions = answer (within 1e-9)."""
        return self.contributions.as_dict(self.features)


def _floats(rows: Rows) -> np.ndarray:
    """Rows as float64 (a null, None, is NaN: the ensemble sends it where scikit-learn does)."""
    return rows if isinstance(rows, np.ndarray) else np.array(rows, dtype=np.float64)


class EnsemblePredictor(Predictor):
    """A fitted tree ensemble, compiled; the estimator itself is unpickled on demand."""

    kind = "tree ensemble"
    name = "ensemble"

    def __init__(self, ensemble: CompiledEnsemble, load_estimator: Callable[[], object]) -> None:
        self.ensemble = ensemble
        self.accepts_missing = ensemble.allow_nan
        if ensemble.is_classifier:
            self.classes = tuple(ensemble.classes)
            self.capabilities = frozenset({LABELS, PROBABILITIES, EXPLANATION})
        else:
            self.classes = ()
            self.capabilities = frozenset({VALUE, EXPLANATION})
        self._load_estimator = load_estimator
        # At load (in gunicorn's master, before the fork), not on the first request: generating
        # the walk takes a few tenths of a second for a 100-tree forest.
        ensemble.prepare_one_row()

    @classmethod
    def from_estimator(cls, estimator: object) -> EnsemblePredictor:
        """The predictor of an estimator at hand; NotCompilable when it has no compiled path."""
        return cls(CompiledEnsemble.from_estimator(estimator), lambda: estimator)

    @functools.cached_property
    def estimator(self) -> object:
        """The fitted estimator, unpickled (after the version's checks) on first use."""
        return self._load_estimator()

    def compiled(self) -> bytes:
        """The flattened trees (``ensemble.bin`` of a saved version)."""
        return self.ensemble.to_bytes()

    def answer(self, rows: Rows, *, single: bool, use_estimator: bool = False) -> ArrayAnswers | RowAnswers:
        """One row: the Python walk, answered in Python values; a batch: the bit-vector path,
        once for labels and probabilities together."""
        ensemble = self.ensemble
        if single and not isinstance(rows, np.ndarray):
            row = [np.nan if v is None else v for v in rows[0]]
            found = ensemble.predict_one(row)
            if not ensemble.is_classifier:
                return RowAnswers((), value=found.value)
            return RowAnswers(self.classes, found.label, found.probabilities)
        X = _floats(rows)
        if not ensemble.is_classifier:
            return ArrayAnswers((), values=ensemble.predict(X))
        labels, probabilities = ensemble.predict_with_proba(X)
        return ArrayAnswers(self.classes, labels, probabilities)

    def explain(self, features: Sequence[str], rows: Rows) -> list[ContributionExplanation]:
        """Each row's contributions to its predicted class's probability (or to the value)."""
        names = tuple(features)
        return [
            ContributionExplanation(self.ensemble.contributions([np.nan if v is None else v for v in row]), names)
            for row in (rows.tolist() if isinstance(rows, np.ndarray) else rows)
        ]
