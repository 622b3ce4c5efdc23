"""Predictors: what answers rows for a loaded version (see :mod:`modeler.predictors.base`).

Which kind serves an estimator is decided here, in one place:

- ``tree``: a DecisionTreeClassifier with text labels (the default model) by the compiled
  single tree (:mod:`modeler.predictors.tree`);
- ``ensemble``: RandomForest, ExtraTrees, GradientBoosting and HistGradientBoosting, classifiers
  and regressors, by the compiled ensemble (:mod:`modeler.predictors.ensemble`), when it
  compiles and agrees with the estimator on probe rows;
- ``general``: anything else, Pipelines included (:mod:`modeler.predictors.general`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from modeler.load_errors import NotCompilable
from modeler.predictors.base import Predictor
from modeler.schema import Schema

TREE, ENSEMBLE, GENERAL = "tree", "ensemble", "general"
# The compiled form's file in a version's directory, per predictor that has one.
COMPILED_FILES = {TREE: "tree.json", ENSEMBLE: "ensemble.bin"}
ENSEMBLE_CLASSES = frozenset(
    {
        f"{kind}{task}"
        for kind in ("RandomForest", "ExtraTrees", "GradientBoosting", "HistGradientBoosting")
        for task in ("Classifier", "Regressor")
    }
)


def _tree_served(estimator: object) -> bool:
    from sklearn.tree import DecisionTreeClassifier

    if type(estimator) is not DecisionTreeClassifier or estimator.n_outputs_ != 1:
        return False
    # The compiled tree answers labels as text: other labels keep their type on the general path.
    return all(isinstance(c, str) for c in estimator.classes_.tolist())


def predictor_for(estimator: object, schema: Schema | None = None) -> Predictor:
    """The predictor of a fitted estimator at hand (``schema`` is needed by the general one;
    None: built from the estimator alone)."""
    from modeler.predictors.tree import TreePredictor

    if _tree_served(estimator):
        return TreePredictor.from_estimator(estimator)
    if type(estimator).__name__ in ENSEMBLE_CLASSES and type(estimator).__module__.startswith("sklearn."):
        from modeler.predictors.ensemble import EnsemblePredictor

        try:
            return EnsemblePredictor.from_estimator(estimator)
        except NotCompilable:
            pass  # categorical splits, another loss...: the estimator answers for itself
    from modeler.predictors.general import GeneralPredictor
    from modeler.schema import schema_of

    return GeneralPredictor.from_estimator(estimator, schema or schema_of(estimator))


def saved_predictor(
    compiled: bytes, load_estimator: Callable[[], object], metadata: Mapping | None = None
) -> Predictor:
    """The predictor of a saved version from its compiled form (no unpickling; ValueError,
    KeyError or TypeError when the data is not one); ``metadata["predictor"]`` says which form."""
    kind = (metadata or {}).get("predictor", TREE)
    if kind == ENSEMBLE:
        from modeler.compiled_ensemble import CompiledEnsemble
        from modeler.predictors.ensemble import EnsemblePredictor

        return EnsemblePredictor(CompiledEnsemble.from_bytes(compiled), load_estimator)
    if kind != TREE:
        raise ValueError(f"a {kind} predictor has no compiled form")
    from modeler.compiled_tree import CompiledTree
    from modeler.predictors.tree import TreePredictor

    return TreePredictor(CompiledTree.from_json(compiled), load_estimator)
