"""The compiled tree answers exactly as scikit-learn does, on inputs built to sit on its thresholds.

sklearn casts inputs to float32 before comparing them with float64 thresholds that lie between
two float32 values; a walk that skips the cast disagrees right there. Every exact threshold and
its float32 and float64 neighbours are among the inputs, and a deliberately cast-free walker is
run through the same check to prove that the check would catch one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_classification
from sklearn.tree import DecisionTreeClassifier

from modeler.compiled_tree import TREE_LEAF, CompiledTree
from modeler.data import load_training_data
from modeler.modeler import Modeler

N_INPUTS = 100_000
Walker = Callable[[CompiledTree, Sequence[float]], int]


def boundary_values(thresholds: np.ndarray) -> np.ndarray:
    """Each threshold, its float64 neighbours, its float32 rounding and that value's neighbours."""
    t64 = thresholds.astype(np.float64)
    t32 = t64.astype(np.float32)
    values = [
        t64,
        np.nextafter(t64, -np.inf),
        np.nextafter(t64, np.inf),
        t32.astype(np.float64),
        np.nextafter(t32, np.float32(-np.inf)).astype(np.float64),
        np.nextafter(t32, np.float32(np.inf)).astype(np.float64),
    ]
    return np.unique(np.concatenate(values))


def hard_inputs(estimator: DecisionTreeClassifier, data: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` float64 rows: training rows and random rows, one feature set to a boundary value.

    Every (feature, boundary value) pair appears at least once; the other features come from
    the training data, so the rows actually reach the nodes that test those thresholds.
    """
    rng = np.random.default_rng(seed)
    tree = estimator.tree_
    internal = tree.children_left != TREE_LEAF
    pairs = [
        (f, v) for f in range(data.shape[1]) for v in boundary_values(tree.threshold[internal & (tree.feature == f)])
    ]
    assert pairs, "the tree has no split to test"
    low, high = data.min(axis=0), data.max(axis=0)
    base = np.where(
        rng.random((n, 1)) < 0.5,
        data[rng.integers(0, len(data), n)],
        rng.uniform(low - 1, high + 1, (n, data.shape[1])),
    )
    chosen = np.concatenate([np.arange(len(pairs)), rng.integers(0, len(pairs), n - len(pairs))])
    rows = np.arange(n)
    features = np.array([pairs[i][0] for i in chosen])
    base[rows, features] = [pairs[i][1] for i in chosen]
    return base


def walk_without_cast(tree: CompiledTree, row: Sequence[float]) -> int:
    """The tempting bug: compare float64 inputs with the thresholds directly."""
    node = 0
    while tree.left[node] != TREE_LEAF:
        go_left = row[tree.feature[node]] <= tree.threshold[node]
        node = tree.left[node] if go_left else tree.right[node]
    return int(node)


def walk_each_row(walker: Walker) -> Callable[[CompiledTree, np.ndarray], np.ndarray]:
    """A batch function that calls a single-row ``walker`` on every row, as Python floats."""
    return lambda tree, X: np.array([walker(tree, row) for row in X.tolist()])


def assert_same_as_sklearn(
    estimator: DecisionTreeClassifier, X: np.ndarray, leaves_of: Callable[[CompiledTree, np.ndarray], np.ndarray]
) -> None:
    """Labels and probabilities of the leaves ``leaves_of`` finds equal sklearn's, exactly."""
    tree = CompiledTree.from_estimator(estimator)
    frame = pd.DataFrame(X, columns=estimator.feature_names_in_) if hasattr(estimator, "feature_names_in_") else X
    expected_labels = estimator.predict(frame).astype(str)
    expected_proba = estimator.predict_proba(frame)
    leaves = leaves_of(tree, X)
    labels = np.array([tree.leaf_labels[leaf] for leaf in leaves])
    wrong = np.flatnonzero(labels != expected_labels)
    assert not wrong.size, f"{wrong.size} labels differ, first at row {X[wrong[0]].tolist()!r}"
    assert np.array_equal(tree.leaf_proba[leaves], expected_proba)
    assert [tree.leaf_proba_dicts[leaf] for leaf in leaves[:1000]] == [
        dict(zip(tree.classes, p, strict=True)) for p in expected_proba[:1000].tolist()
    ]


def training_data(modeler: Modeler) -> np.ndarray:
    X, _ = load_training_data(modeler.data, modeler.target)
    return X.to_numpy(dtype=np.float64)


def iris_case(tmp_path) -> tuple[DecisionTreeClassifier, np.ndarray]:
    modeler = Modeler(tmp_path / "models").fit()
    return modeler.ensure_ready().estimator, training_data(modeler)


def random_case(tmp_path) -> tuple[DecisionTreeClassifier, np.ndarray]:
    X, y = make_classification(
        n_samples=3000, n_features=6, n_informative=5, n_redundant=1, n_classes=3, random_state=1
    )
    X = X.astype(np.float32).astype(np.float64) * 10.0  # continuous values: many float32-sensitive thresholds
    estimator = DecisionTreeClassifier(random_state=0, max_depth=12).fit(X, np.array(["a", "b", "c"])[y])
    return estimator, X


CASES = {"iris": iris_case, "random-deep": random_case}


@pytest.fixture(scope="module", params=list(CASES))
def case(request, tmp_path_factory) -> tuple[DecisionTreeClassifier, np.ndarray]:
    estimator, data = CASES[request.param](tmp_path_factory.mktemp(request.param))
    return estimator, hard_inputs(estimator, data, N_INPUTS)


def test_single_row_walk_is_identical_to_sklearn(case) -> None:
    estimator, X = case
    assert_same_as_sklearn(estimator, X, walk_each_row(CompiledTree.leaf_of))


def test_batch_path_is_identical_to_sklearn(case) -> None:
    estimator, X = case
    assert_same_as_sklearn(estimator, X, CompiledTree.leaves)


def test_a_walk_without_the_float32_cast_fails_the_same_check(case) -> None:
    estimator, X = case
    with pytest.raises(AssertionError, match="labels differ"):
        assert_same_as_sklearn(estimator, X, walk_each_row(walk_without_cast))


def test_modeler_single_rows_and_batches_match_sklearn_on_boundary_inputs(tmp_path) -> None:
    modeler = Modeler(tmp_path / "models").fit()
    estimator = modeler.ensure_ready().estimator
    X = hard_inputs(estimator, training_data(modeler), 2000, seed=7)
    frame = pd.DataFrame(X, columns=modeler.features)
    expected = estimator.predict(frame).tolist()
    assert modeler.predict(X) == expected
    assert modeler.predict(frame) == expected
    assert [modeler.predict(dict(zip(modeler.features, row, strict=True))) for row in X.tolist()] == expected
    assert [modeler.predict(row) for row in X.tolist()] == expected
    proba = estimator.predict_proba(frame)
    assert np.array_equal(modeler.predict_proba(frame).to_numpy(), proba)
