"""Predictors: what answers rows for a loaded version (see :mod:`modeler.predictors.base`).

Which kind serves an estimator is decided here, in one place: today a DecisionTreeClassifier is
served by the compiled single tree.
"""

from __future__ import annotations

from collections.abc import Callable

from modeler.compiled_tree import CompiledTree
from modeler.predictors.base import Predictor
from modeler.predictors.tree import TreePredictor


def predictor_for(estimator: object) -> Predictor:
    """The predictor of a fitted estimator at hand."""
    return TreePredictor.from_estimator(estimator)


def saved_predictor(compiled: bytes, load_estimator: Callable[[], object]) -> Predictor:
    """The predictor of a saved version from its compiled form (no unpickling; ValueError,
    KeyError or TypeError when the data is not one)."""
    return TreePredictor(CompiledTree.from_json(compiled), load_estimator)
