"""Compiled tree ensembles answer exactly as scikit-learn does, on inputs built on their thresholds.

For each supported class (forests and boosting, classifiers and regressors) on small data (Iris
for multiclass, a 5-feature random binary set, a regression set, with missing values where the
model accepts them): 100,000 rows whose values sit on the split thresholds and their float32 and
float64 neighbours (tests/test_compiled_tree.py's builder) must give bit-identical labels,
values and probabilities through the bit-vector batch path; the level walk, the one-row path and
the saved-and-loaded copy must agree too; explanations must add up. Two deliberate mistakes (no
float32 cast, another summation order) are run through the same checks to show they would fail.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import warnings
from collections.abc import Callable
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_iris, make_regression
from sklearn.dummy import DummyClassifier
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.tree import DecisionTreeClassifier
from threadpoolctl import threadpool_limits

from modeler.compiled_ensemble import MAGIC, PROBABILITY, VALUE, CompiledEnsemble
from modeler.ensemble_export import flatten
from modeler.ensemble_tables import LEAF
from modeler.errors import NOT_FINITE, InvalidInput
from modeler.load_errors import NotCompilable
from tests.support import REPO
from tests.test_compiled_tree import hard_inputs

N_INPUTS = 100_000
N_OTHER_PATHS = 10_000  # rows also run through the level walk and the one-row path
N_EXPLAINED = 300
N_EVERY_CLASS = 20  # rows explained for every class, not only the predicted one
MISSING_SHARE = 0.03


def _iris() -> tuple[np.ndarray, np.ndarray]:
    return load_iris(return_X_y=True)


def _binary() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    X = rng.standard_normal((600, 5))
    return X, np.array(["no", "yes"])[(X[:, 0] + X[:, 1] > 0).astype(int)]


def _binary_missing() -> tuple[np.ndarray, np.ndarray]:
    X, y = _binary()
    X = X.copy()
    X[np.random.default_rng(1).random(X.shape) < 0.1] = np.nan
    return X, y


def _regression() -> tuple[np.ndarray, np.ndarray]:
    return make_regression(n_samples=400, n_features=5, noise=10.0, random_state=0)


def _regression_missing() -> tuple[np.ndarray, np.ndarray]:
    X, y = _regression()
    X = X.copy()
    X[np.random.default_rng(2).random(X.shape) < 0.1] = np.nan
    return X, y


def _counts() -> tuple[np.ndarray, np.ndarray]:
    X, y = _regression()
    return X, np.abs(y) / 10


CASES: dict[str, tuple[Callable[[], object], Callable[[], tuple[np.ndarray, np.ndarray]]]] = {
    "random-forest-classifier-iris": (lambda: RandomForestClassifier(n_estimators=20, random_state=0), _iris),
    "random-forest-classifier-binary": (lambda: RandomForestClassifier(n_estimators=20, random_state=0), _binary),
    "random-forest-classifier-missing": (
        lambda: RandomForestClassifier(n_estimators=20, random_state=0),
        _binary_missing,
    ),
    "extra-trees-classifier-iris": (lambda: ExtraTreesClassifier(n_estimators=20, random_state=0), _iris),
    "extra-trees-classifier-binary": (lambda: ExtraTreesClassifier(n_estimators=20, random_state=0), _binary),
    "gradient-boosting-classifier-iris": (lambda: GradientBoostingClassifier(n_estimators=20, random_state=0), _iris),
    "gradient-boosting-classifier-binary": (
        lambda: GradientBoostingClassifier(n_estimators=30, random_state=0),
        _binary,
    ),
    "gradient-boosting-classifier-exponential": (
        lambda: GradientBoostingClassifier(n_estimators=20, loss="exponential", random_state=0),
        _binary,
    ),
    "gradient-boosting-classifier-zero-init": (
        lambda: GradientBoostingClassifier(n_estimators=20, init="zero", random_state=0),
        _iris,
    ),
    "hist-gradient-boosting-classifier-iris": (lambda: HistGradientBoostingClassifier(max_iter=20), _iris),
    "hist-gradient-boosting-classifier-binary": (lambda: HistGradientBoostingClassifier(max_iter=30), _binary),
    "hist-gradient-boosting-classifier-missing": (
        lambda: HistGradientBoostingClassifier(max_iter=30),
        _binary_missing,
    ),
    "random-forest-regressor": (lambda: RandomForestRegressor(n_estimators=20, random_state=0), _regression),
    "extra-trees-regressor": (lambda: ExtraTreesRegressor(n_estimators=10, random_state=0), _regression),
    "gradient-boosting-regressor": (lambda: GradientBoostingRegressor(n_estimators=30, random_state=0), _regression),
    "gradient-boosting-regressor-huber": (
        lambda: GradientBoostingRegressor(n_estimators=20, loss="huber", random_state=0),
        _regression,
    ),
    "hist-gradient-boosting-regressor": (lambda: HistGradientBoostingRegressor(max_iter=30), _regression),
    "hist-gradient-boosting-regressor-missing": (
        lambda: HistGradientBoostingRegressor(max_iter=30),
        _regression_missing,
    ),
    "hist-gradient-boosting-regressor-poisson": (
        lambda: HistGradientBoostingRegressor(max_iter=20, loss="poisson"),
        _counts,
    ),
}


def inputs_on_thresholds(compiled: CompiledEnsemble, data: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` rows from tests/test_compiled_tree.py's builder, fed every split of every tree
    (each threshold with its float32 and float64 neighbours), plus missing values where the model
    takes them."""
    internal = compiled.left != LEAF
    finite = internal & np.isfinite(compiled.threshold)
    splits = SimpleNamespace(
        children_left=np.where(finite, 0, LEAF), feature=compiled.feature, threshold=compiled.threshold
    )
    X = hard_inputs(SimpleNamespace(tree_=splits), data[~np.isnan(data).any(axis=1)], n, seed)
    if compiled.allow_nan:
        X[np.random.default_rng(seed + 1).random(X.shape) < MISSING_SHARE] = np.nan
    return X


def sklearn_answers(estimator, X: np.ndarray) -> dict[str, np.ndarray]:
    answers = {"predict": estimator.predict(X)}
    if hasattr(estimator, "predict_proba"):
        answers["predict_proba"] = estimator.predict_proba(X)
    return answers


@pytest.fixture(scope="module", params=list(CASES))
def case(request) -> SimpleNamespace:
    make, data = CASES[request.param]
    X, y = data()
    # One OpenMP thread: HistGradientBoosting's threads only fight over the shared cores here.
    with threadpool_limits(1):
        estimator = make().fit(X, y)
        compiled = CompiledEnsemble.from_estimator(estimator)
        inputs = inputs_on_thresholds(compiled, X, N_INPUTS)
        expected = sklearn_answers(estimator, inputs)
    return SimpleNamespace(name=request.param, estimator=estimator, compiled=compiled, X=inputs, expected=expected)


def assert_identical(expected: dict[str, np.ndarray], got: dict[str, np.ndarray], X: np.ndarray) -> None:
    """Labels or values, and probabilities, equal bit for bit (NaN nowhere: answers are finite)."""
    for name, want in expected.items():
        have = got[name]
        assert have.shape == want.shape, name
        wrong = np.flatnonzero((have != want).reshape(len(want), -1).any(axis=1))
        assert not wrong.size, f"{name}: {wrong.size} rows differ, first {X[wrong[0]].tolist()!r}"


def compiled_answers(compiled: CompiledEnsemble, X: np.ndarray, **options) -> dict[str, np.ndarray]:
    answers = {"predict": compiled.predict(X, **options)}
    if compiled.is_classifier:
        answers["predict_proba"] = compiled.predict_proba(X, **options)
    return answers


def test_batches_are_identical_to_sklearn(case) -> None:
    assert case.compiled._tables is not None, "the bit-vector path was not used"
    assert_identical(case.expected, compiled_answers(case.compiled, case.X), case.X)


def test_the_level_walk_is_identical_to_sklearn(case) -> None:
    X = case.X[:N_OTHER_PATHS]
    expected = {name: answers[:N_OTHER_PATHS] for name, answers in case.expected.items()}
    assert_identical(expected, compiled_answers(case.compiled, X, walk=True), X)
    prepared = case.compiled._prepared(X)
    assert np.array_equal(case.compiled.leaves(prepared), case.compiled.leaves(prepared, walk=True))


def test_one_row_answers_are_identical_to_sklearn(case) -> None:
    rows = case.X[:N_OTHER_PATHS]
    answers = [case.compiled.predict_one(row) for row in rows.tolist()]
    if case.compiled.is_classifier:
        assert [a.label for a in answers] == case.expected["predict"][:N_OTHER_PATHS].tolist()
        assert [a.probabilities for a in answers] == [
            tuple(p) for p in case.expected["predict_proba"][:N_OTHER_PATHS].tolist()
        ]
    else:
        assert [a.value for a in answers] == case.expected["predict"][:N_OTHER_PATHS].tolist()


def test_saved_bytes_answer_the_same(case) -> None:
    loaded = CompiledEnsemble.from_bytes(case.compiled.to_bytes())
    assert_identical(case.expected, compiled_answers(loaded, case.X), case.X)


def test_contributions_and_bias_sum_to_the_answer(case) -> None:
    rows = case.X[:N_EXPLAINED]
    for i, row in enumerate(rows.tolist()):
        explained = case.compiled.contributions(row)
        assert len(explained.values) == case.compiled.n_features
        assert abs(explained.bias + sum(explained.values) - explained.answer) <= 1e-9
        if case.compiled.is_classifier:
            k = case.compiled.classes.index(explained.output)
            assert explained.output == case.expected["predict"][i]
            assert explained.answer == case.expected["predict_proba"][i, k]
            assert explained.space == PROBABILITY
            if i < N_EVERY_CLASS:
                for other in range(len(case.compiled.classes)):
                    each = case.compiled.contributions(row, output=other)
                    assert each.answer == case.expected["predict_proba"][i, other]
                    assert abs(each.bias + sum(each.values) - each.answer) <= 1e-9
        else:
            assert explained.answer == case.expected["predict"][i]
            assert explained.space == VALUE


# --- the checks can fail ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def forest_on_thresholds() -> SimpleNamespace:
    X, y = _regression()
    forest = RandomForestRegressor(n_estimators=20, random_state=0).fit(X, y)
    compiled = CompiledEnsemble.from_estimator(forest)
    inputs = inputs_on_thresholds(compiled, X, N_INPUTS)
    return SimpleNamespace(forest=forest, compiled=compiled, X=inputs, expected=sklearn_answers(forest, inputs))


def test_a_walk_without_the_float32_cast_fails_the_same_check(forest_on_thresholds) -> None:
    case = forest_on_thresholds
    uncast = CompiledEnsemble(**{**flatten(case.forest), "cast": "float64"})
    with pytest.raises(AssertionError, match="rows differ"):
        assert_identical(case.expected, compiled_answers(uncast, case.X), case.X)


def test_a_sum_in_another_order_fails_the_same_check(forest_on_thresholds) -> None:
    case = forest_on_thresholds
    leaves = case.compiled.leaves(case.compiled._prepared(case.X))
    pairwise = case.compiled.value[leaves, 0].sum(axis=1) / case.compiled.n_trees  # numpy's pairwise sum
    with pytest.raises(AssertionError, match="rows differ"):
        assert_identical(case.expected, {"predict": pairwise}, case.X)


# --- what is refused ----------------------------------------------------------------------------------


def _categorical_hist_gradient_boosting():
    X, y = _binary()
    X = X.copy()
    X[:, 0] = np.floor(np.abs(X[:, 0]) * 3)
    return HistGradientBoostingClassifier(max_iter=5, categorical_features=[0]).fit(X, y)


REFUSED: dict[str, tuple[Callable[[], object], str]] = {
    "single tree": (lambda: DecisionTreeClassifier().fit(*_iris()), "no compiled ensemble path"),
    "linear model": (lambda: LogisticRegression(max_iter=1000).fit(*_iris()), "no compiled ensemble path"),
    "not fitted": (lambda: RandomForestClassifier(), "not fitted"),
    "multi-output forest": (
        lambda: RandomForestRegressor(n_estimators=3).fit(_regression()[0], np.c_[_regression()[1], _regression()[1]]),
        "multi-output",
    ),
    "linear init": (
        lambda: GradientBoostingRegressor(n_estimators=3, init=LinearRegression()).fit(*_regression()),
        "init estimator LinearRegression",
    ),
    "random init": (
        lambda: GradientBoostingClassifier(n_estimators=3, init=DummyClassifier(strategy="stratified")).fit(*_iris()),
        "init estimator",
    ),
    "categorical features": (_categorical_hist_gradient_boosting, "categorical"),
}


@pytest.mark.parametrize("case_name", list(REFUSED))
def test_what_is_not_compiled_is_refused_with_a_reason(case_name) -> None:
    make, reason = REFUSED[case_name]
    with pytest.raises(NotCompilable, match=reason):
        CompiledEnsemble.from_estimator(make())


# --- inputs -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fitted_pair() -> dict[str, tuple[object, CompiledEnsemble]]:
    X, y = _binary()
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    models = {
        "forest": RandomForestClassifier(n_estimators=5, random_state=0).fit(frame, y),
        "boosting": GradientBoostingClassifier(n_estimators=5, random_state=0).fit(frame, y),
        "hist": HistGradientBoostingClassifier(max_iter=5).fit(frame, y),
    }
    return {name: (model, CompiledEnsemble.from_estimator(model)) for name, model in models.items()}


def test_feature_names_come_from_the_model(fitted_pair) -> None:
    assert fitted_pair["forest"][1].feature_names == ["f0", "f1", "f2", "f3", "f4"]


def test_a_row_of_the_wrong_width_is_invalid_input(fitted_pair) -> None:
    _, compiled = fitted_pair["forest"]
    with pytest.raises(InvalidInput, match="expected rows of 5 features"):
        compiled.predict(np.zeros((2, 4)))
    with pytest.raises(InvalidInput, match="expected 5 features"):
        compiled.predict_one([0.0] * 6)


@pytest.mark.parametrize(
    ("model", "value", "accepted"),
    [
        ("forest", np.nan, True),
        ("forest", np.inf, False),
        ("forest", 1e39, False),  # inf once cast to float32, which scikit-learn refuses too
        ("boosting", np.nan, False),
        ("hist", np.nan, True),
        ("hist", np.inf, True),
    ],
)
def test_missing_and_infinite_values_are_taken_or_refused_as_sklearn_does(fitted_pair, model, value, accepted):
    estimator, compiled = fitted_pair[model]
    X = np.zeros((3, 5))
    X[1, 2] = value
    frame = pd.DataFrame(X, columns=estimator.feature_names_in_)
    if accepted:
        assert np.array_equal(compiled.predict_proba(X), estimator.predict_proba(frame))
        assert compiled.predict_one(X[1].tolist()).probabilities == tuple(estimator.predict_proba(frame)[1].tolist())
        return
    with warnings.catch_warnings(), pytest.raises(ValueError):
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow in the float32 cast
        estimator.predict_proba(frame)
    with pytest.raises(InvalidInput) as refused:
        compiled.predict_proba(X)
    assert [(e.row, e.field, e.problem) for e in refused.value.errors] == [(1, "f2", NOT_FINITE)]
    with pytest.raises(InvalidInput):
        compiled.predict_one(X[1].tolist())


def test_a_regressor_has_no_probabilities() -> None:
    compiled = CompiledEnsemble.from_estimator(RandomForestRegressor(n_estimators=2).fit(*_regression()))
    with pytest.raises(TypeError, match="regressor"):
        compiled.predict_proba(np.zeros((1, 5)))


# --- the saved format -----------------------------------------------------------------------------------


def test_a_file_that_is_not_a_compiled_ensemble_is_refused(fitted_pair) -> None:
    data = fitted_pair["forest"][1].to_bytes()
    for damaged in (b"", b"not a model", data[:40], data[: len(data) // 2]):
        with pytest.raises(ValueError):
            CompiledEnsemble.from_bytes(damaged)


def test_a_child_index_outside_its_tree_is_refused_on_load(fitted_pair) -> None:
    compiled = fitted_pair["forest"][1]
    data = bytearray(compiled.to_bytes())
    (length,) = struct.unpack_from("<Q", data, len(MAGIC))
    start = len(MAGIC) + 8
    header = json.loads(data[start : start + length])
    left = start + length + header["arrays"]["left"]["offset"]
    assert struct.unpack_from("<q", data, left)[0] == 1  # the first root's left child
    struct.pack_into("<q", data, left, len(compiled.left) + 5)
    with pytest.raises(ValueError, match="outside its tree"):
        CompiledEnsemble.from_bytes(bytes(data))


def test_a_saved_file_with_an_unknown_setting_is_refused(fitted_pair) -> None:
    data = fitted_pair["hist"][1].to_bytes()
    assert data.count(b'"link": "logit"') == 1
    with pytest.raises(ValueError, match="unknown link 'logix'"):
        CompiledEnsemble.from_bytes(data.replace(b'"link": "logit"', b'"link": "logix"'))


def test_no_pickle_in_the_saved_bytes(fitted_pair) -> None:
    data = fitted_pair["hist"][1].to_bytes()
    assert data.startswith(MAGIC)
    assert b"\x80\x04" not in data and b"\x80\x05" not in data  # no pickle protocol 4/5 header


def test_the_benchmark_runs_and_finds_the_answers_equal() -> None:
    done = subprocess.run(
        [sys.executable, "bench/ensemble.py", "--trees", "5", "--rows", "300", "--repeat", "1"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-1000:]
    assert "answers equal: one row True, 300 rows True" in done.stdout
    assert "ratio" in done.stdout


def test_the_generated_one_row_walk_finds_the_flat_walks_leaves(case) -> None:
    compiled = case.compiled
    assert compiled._row_walker is not None, "the one-row path did not use the generated walk"
    flat = CompiledEnsemble.from_bytes(compiled.to_bytes())
    flat.__dict__["_row_walker"] = None  # the flat-list walk, as for an ensemble too large to generate
    rows = [compiled._prepared_row(row) for row in case.X[:N_OTHER_PATHS].tolist()]
    assert [compiled._leaves_of_row(x) for x in rows] == [flat._leaves_of_row(x) for x in rows]


def test_the_generated_one_row_sums_answer_as_the_leaves_and_numpy_do(case) -> None:
    compiled = case.compiled
    assert compiled._row_summer is not None, "the one-row path did not use the generated sums"
    by_leaves = CompiledEnsemble.from_bytes(compiled.to_bytes())
    by_leaves.__dict__["_row_summer"] = None  # leaves, then numpy's take and accumulate
    rows = case.X[:N_OTHER_PATHS].tolist()
    assert [compiled.predict_one(row) for row in rows] == [by_leaves.predict_one(row) for row in rows]
    prepared = [compiled._prepared_row(row) for row in rows[:200]]
    for x in prepared:
        assert compiled._row_raw(x).tolist() == by_leaves._row_raw(x).tolist()


def test_the_generated_sums_add_each_leafs_values_in_tree_order() -> None:
    from modeler.ensemble_walk import MAX_NODES, Trees, row_summer

    # Two one-split trees on feature 0 (at 0.5 and at 1.5), each leaf adding to column 0 or 1.
    tree = Trees(
        [0, -1, -1, 0, -1, -1], [0.5, 0, 0, 1.5, 0, 0], [1, -1, -1, 4, -1, -1], [2, -1, -1, 5, -1, -1], [0, 3], 1, 1
    )
    values = {1: 0.1, 2: 0.2, 4: 0.7, 5: 1e-17}
    summer = row_summer(tree, starts=[1.0, 0.0], leaf_adds=lambda t, leaf: [(t, values[leaf])])
    assert summer is not None
    assert summer([0.5]) == [1.0 + 0.1, 0.0 + 0.7] and summer([2.0]) == [1.0 + 0.2, 0.0 + 1e-17]
    no_adds = row_summer(tree, starts=[0.25], leaf_adds=lambda t, leaf: [])
    assert no_adds is not None and no_adds([0.0]) == [0.25]
    # Every leaf's additions count against the size the code may have.
    many = row_summer(tree, starts=[0.0], leaf_adds=lambda t, leaf: [(0, 1.0)] * MAX_NODES)
    assert many is None


def test_the_generated_walk_is_left_out_where_it_cannot_serve() -> None:
    from modeler.ensemble_walk import MAX_DEPTH, MAX_NODES, Trees, row_walker

    # One split (node 0 on feature 0 at 0.5) and its two leaves.
    tree = ([0, -1, -1], [0.5, 0.0, 0.0], [1, -1, -1], [2, -1, -1], [0])
    walker = row_walker(Trees(*tree, n_features=1, depth=1))
    assert walker is not None and walker([0.5]) == [1] and walker([0.6]) == [2]
    assert row_walker(Trees(*tree, n_features=1, depth=MAX_DEPTH + 1)) is None
    assert row_walker(Trees([0, -1, -1], [float("nan"), 0.0, 0.0], *tree[2:], n_features=1, depth=1)) is None
    split_at_infinity = row_walker(Trees([0, -1, -1], [float("inf"), 0.0, 0.0], *tree[2:], n_features=1, depth=1))
    assert split_at_infinity is not None and split_at_infinity([1e308]) == [1]
    big = [-1] * (MAX_NODES + 1)
    assert row_walker(Trees(big, [0.0] * len(big), big, big, [0], n_features=1, depth=0)) is None
