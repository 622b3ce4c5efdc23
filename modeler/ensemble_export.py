"""scikit-learn's fitted tree ensembles read into :class:`~modeler.compiled_ensemble.CompiledEnsemble`'s
arrays: the one module that knows their internals (``tree_``, ``_predictors``, ``init_``, ``_loss``).

Only exact classes are read (a subclass may predict differently), and everything the compiled
path does not reproduce is refused with NotCompilable, saying what: multi-output forests, init
estimators other than scikit-learn's Dummy ones (the stratified one is random), losses with
another link, HistGradientBoosting's categorical features.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modeler.compiled_ensemble import (
    BOOSTING,
    CAST_FLOAT32,
    CAST_FLOAT64,
    FOREST,
    HALF_LOGIT,
    IDENTITY,
    LEAF,
    LOG,
    LOGIT,
    SOFTMAX,
    CompiledEnsemble,
)
from modeler.load_errors import NotCompilable

# Probe rows checked against the estimator when compiling (not the identity test: a safety net).
PROBE_ROWS = 512
# The link of each loss, by class name (scikit-learn's private loss classes).
CLASSIFIER_LINKS = {"HalfBinomialLoss": LOGIT, "ExponentialLoss": HALF_LOGIT, "HalfMultinomialLoss": SOFTMAX}
REGRESSOR_LINKS = {"IdentityLink": IDENTITY, "LogLink": LOG}


def _concatenate(trees: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Trees' node arrays back to back, children renumbered to global indices."""
    sizes = [len(tree["left"]) for tree in trees]
    offsets = np.concatenate(([0], np.cumsum(sizes)[:-1])).astype(np.int64)
    joined: dict[str, np.ndarray] = {"roots": offsets}
    for name in ("feature", "threshold", "missing_left", "value"):
        joined[name] = np.concatenate([tree[name] for tree in trees])
    for name in ("left", "right"):
        joined[name] = np.concatenate(
            [
                np.where(tree[name] == LEAF, LEAF, tree[name] + offset)
                for tree, offset in zip(trees, offsets, strict=True)
            ]
        )
    return joined


def _sklearn_tree(tree: Any, value: np.ndarray) -> dict[str, np.ndarray]:
    """One ``sklearn.tree._tree.Tree``'s arrays, with ``value`` as its node values."""
    if tree.node_count > tree.capacity:  # a crafted pickle: the arrays would be read past their end
        raise NotCompilable("a tree claims more nodes than it holds")
    return {
        "feature": np.asarray(tree.feature, dtype=np.int64),
        "threshold": np.asarray(tree.threshold, dtype=np.float64),
        "left": np.asarray(tree.children_left, dtype=np.int64),
        "right": np.asarray(tree.children_right, dtype=np.int64),
        "missing_left": np.asarray(tree.missing_go_to_left, dtype=np.uint8),
        "value": value,
    }


def _common(estimator: Any, kind: str, **fields: Any) -> dict[str, Any]:
    names = getattr(estimator, "feature_names_in_", None)
    return {
        "estimator": type(estimator).__name__,
        "kind": kind,
        "n_features": int(estimator.n_features_in_),
        "feature_names": None if names is None else [str(name) for name in names],
        "allow_nan": bool(estimator.__sklearn_tags__().input_tags.allow_nan),
        **fields,
    }


def _classes(estimator: Any) -> list[Any]:
    return np.asarray(estimator.classes_).tolist()  # JSON types: str, int, float, bool


def _forest(estimator: Any, is_classifier: bool) -> dict[str, Any]:
    if estimator.n_outputs_ != 1:
        raise NotCompilable("multi-output forests are not compiled")
    n_classes = len(estimator.classes_) if is_classifier else 1
    trees = []
    for member in estimator.estimators_:
        tree = member.tree_
        if tree.value.shape[1:] != (1, n_classes) and is_classifier:
            raise NotCompilable("a tree of the forest has another number of classes")
        # Classifiers' trees hold class fractions (scikit-learn >= 1.4), regressors' the mean.
        value = tree.value[:, 0, :n_classes] if is_classifier else tree.value[:, 0, :1]
        trees.append(_sklearn_tree(tree, np.asarray(value, dtype=np.float64)))
    return _common(
        estimator,
        FOREST,
        classes=_classes(estimator) if is_classifier else None,
        cast=CAST_FLOAT32,
        link=IDENTITY,
        decision="argmax",
        raw_order="C",
        init=np.zeros(n_classes),
        **_concatenate(trees),
    )


def _boosting_init(estimator: Any, is_classifier: bool) -> np.ndarray:
    """GradientBoosting's raw start, computed by scikit-learn itself for a few rows: it must be
    the same for every row (Dummy estimators ignore X), else it is refused."""
    from sklearn.dummy import DummyClassifier, DummyRegressor
    from sklearn.ensemble._gb import _init_raw_predictions

    n_outputs = estimator.estimators_.shape[1]
    if isinstance(estimator.init_, str) and estimator.init_ == "zero":
        return np.zeros(n_outputs)
    if type(estimator.init_) not in (DummyClassifier, DummyRegressor) or estimator.init_.strategy == "stratified":
        raise NotCompilable(f"the init estimator {type(estimator.init_).__name__} is not compiled")
    rows = np.zeros((3, estimator.n_features_in_), dtype=np.float32)
    raw = _init_raw_predictions(rows, estimator.init_, estimator._loss, is_classifier)
    if raw.shape != (3, n_outputs) or not (raw == raw[0]).all():
        raise NotCompilable("the init estimator's prediction depends on the row")
    return np.asarray(raw[0], dtype=np.float64)


def _gradient_boosting(estimator: Any, is_classifier: bool) -> dict[str, Any]:
    loss = type(estimator._loss).__name__
    if is_classifier and loss not in CLASSIFIER_LINKS:
        raise NotCompilable(f"the loss {loss} is not compiled")
    # predict_stages adds learning_rate * value: the product is formed the same way here, once.
    learning_rate = float(estimator.learning_rate)
    trees = [
        _sklearn_tree(member.tree_, learning_rate * member.tree_.value[:, 0, :1])
        for stage in estimator.estimators_
        for member in stage  # stage-major: tree t adds to raw column t % outputs
    ]
    return _common(
        estimator,
        BOOSTING,
        classes=_classes(estimator) if is_classifier else None,
        cast=CAST_FLOAT32,
        # A GradientBoostingRegressor answers its raw score, whatever the loss.
        link=CLASSIFIER_LINKS[loss] if is_classifier else IDENTITY,
        decision=">=",
        raw_order="C",
        init=_boosting_init(estimator, is_classifier),
        **_concatenate(trees),
    )


def _hist_predictor(nodes: np.ndarray, learning_rate: float) -> dict[str, np.ndarray]:
    """One HistGradientBoosting TreePredictor's nodes; leaves hold shrunk values already, inner
    nodes the unshrunk ones (scaled here so that explanations add up in one scale)."""
    if np.any(nodes["is_categorical"]):
        raise NotCompilable("categorical splits are not compiled")
    is_leaf = nodes["is_leaf"].astype(bool)
    value = np.where(is_leaf, nodes["value"], learning_rate * nodes["value"])

    def child_or_leaf(name: str) -> np.ndarray:  # unsigned in the predictor: widen before -1
        return np.where(is_leaf, LEAF, nodes[name].astype(np.int64))

    return {
        "feature": child_or_leaf("feature_idx"),
        "threshold": np.asarray(nodes["num_threshold"], dtype=np.float64),
        "left": child_or_leaf("left"),
        "right": child_or_leaf("right"),
        "missing_left": np.asarray(nodes["missing_go_to_left"], dtype=np.uint8),
        "value": value.astype(np.float64)[:, None],
    }


def _hist_gradient_boosting(estimator: Any, is_classifier: bool) -> dict[str, Any]:
    categorical = getattr(estimator, "is_categorical_", None)
    if getattr(estimator, "_preprocessor", None) is not None or (categorical is not None and np.any(categorical)):
        raise NotCompilable("categorical features are not compiled")
    if is_classifier:
        loss = type(estimator._loss).__name__
        link = CLASSIFIER_LINKS.get(loss)
    else:
        loss = type(estimator._loss.link).__name__
        link = REGRESSOR_LINKS.get(loss)
    if link is None:
        raise NotCompilable(f"the loss {loss} is not compiled")
    if not estimator._predictors:
        raise NotCompilable("the model has no trees")
    learning_rate = float(estimator.learning_rate)
    trees = [_hist_predictor(p.nodes, learning_rate) for iteration in estimator._predictors for p in iteration]
    return _common(
        estimator,
        BOOSTING,
        classes=_classes(estimator) if is_classifier else None,
        cast=CAST_FLOAT64,  # HistGradientBoosting compares float64 inputs with float64 thresholds
        link=link,
        decision=">",
        raw_order="F",
        init=0.0 + np.asarray(estimator._baseline_prediction, dtype=np.float64)[0],  # zeros + baseline
        **_concatenate(trees),
    )


def flatten(estimator: Any) -> dict[str, Any]:
    """CompiledEnsemble's constructor arguments for a fitted estimator; NotCompilable otherwise."""
    from sklearn import ensemble

    readers = {
        ensemble.RandomForestClassifier: (_forest, True),
        ensemble.ExtraTreesClassifier: (_forest, True),
        ensemble.RandomForestRegressor: (_forest, False),
        ensemble.ExtraTreesRegressor: (_forest, False),
        ensemble.GradientBoostingClassifier: (_gradient_boosting, True),
        ensemble.GradientBoostingRegressor: (_gradient_boosting, False),
        ensemble.HistGradientBoostingClassifier: (_hist_gradient_boosting, True),
        ensemble.HistGradientBoostingRegressor: (_hist_gradient_boosting, False),
    }
    reader = readers.get(type(estimator))
    if reader is None:
        raise NotCompilable(f"{type(estimator).__name__} has no compiled ensemble path")
    if not hasattr(estimator, "n_features_in_"):
        raise NotCompilable(f"this {type(estimator).__name__} is not fitted")
    read, is_classifier = reader
    try:
        return read(estimator, is_classifier)
    except (AttributeError, IndexError, KeyError, TypeError) as exc:  # a fitted state of another shape
        raise NotCompilable(f"cannot read this {type(estimator).__name__}: {exc}") from exc


def probe_rows(compiled: CompiledEnsemble, seed: int) -> np.ndarray:
    """Rows whose every value sits on a split threshold or beside it (float32 and float64
    neighbours), plus NaNs where the model accepts them."""
    rng = np.random.default_rng(seed)
    internal = compiled.left != LEAF
    columns = []
    for f in range(compiled.n_features):
        t = compiled.threshold[internal & (compiled.feature == f)]
        t = t[np.isfinite(t) & (np.abs(t) < np.finfo(np.float32).max / 2)]
        t32 = t.astype(np.float32)
        near = [t, np.nextafter(t, -np.inf), np.nextafter(t, np.inf), t32, np.nextafter(t32, np.float32(np.inf))]
        candidates = np.unique(np.concatenate([np.asarray(v, dtype=np.float64) for v in near] + [[0.0]]))
        columns.append(rng.choice(candidates, PROBE_ROWS))
    X = np.column_stack(columns)
    if compiled.allow_nan:
        X[rng.random(X.shape) < 0.05] = np.nan
    return X


def estimator_answers(estimator: Any, X: np.ndarray) -> list[np.ndarray]:
    """The estimator's predict (and predict_proba) on X, trees summed in order.

    Forests fitted with ``n_jobs > 1`` add their trees from threads, in whatever order the threads
    finish; joblib's sequential backend makes that order the trees' own, which the compiled path
    follows.
    """
    import joblib

    frame = X
    if hasattr(estimator, "feature_names_in_"):
        import pandas as pd

        frame = pd.DataFrame(X, columns=estimator.feature_names_in_)
    with joblib.parallel_config(backend="sequential"):
        answers = [estimator.predict(frame)]
        if hasattr(estimator, "predict_proba"):
            answers.append(estimator.predict_proba(frame))
    return answers
