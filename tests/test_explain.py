"""Explanations (decision paths) and out-of-range warnings: the Modeler, then /predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flask.testing import FlaskClient
from sklearn.tree import DecisionTreeClassifier

from mldeploy.api.annotations import EXPLAIN, NOT_A_FLAG
from mldeploy.http.app import create_app
from modeler.compiled_tree import CompiledTree
from modeler.data import IRIS_FEATURES, iris_frame
from modeler.explanation import explain_row, short_threshold
from modeler.modeler import Modeler
from tests.support import PETAL_LENGTH_SEED, SEED_ROW

OUTLIER = {**SEED_ROW, "petal_length": 25.0}


@pytest.fixture
def classic(model_dir: Path) -> Modeler:
    """A model whose root split is petal_length <= 2.45, the textbook Iris tree."""
    modeler = Modeler(model_dir, random_state=PETAL_LENGTH_SEED).fit()
    tree = modeler.ensure_ready().predictor.tree
    assert (modeler.features[tree.feature[0]], short_threshold(tree.threshold[0])) == ("petal_length", "2.45")
    return modeler


@pytest.fixture
def classic_client(classic: Modeler) -> FlaskClient:
    return create_app({"TESTING": True, "WARMUP": False}, modeler=classic).test_client()


def post(client: FlaskClient, body: object, query: str = ""):
    return client.post(f"/predict{query}", data=json.dumps(body), content_type="application/json")


# -- the Modeler --------------------------------------------------------------------------


def test_explain_gives_the_path_in_words_and_fields_then_the_leaf(classic: Modeler) -> None:
    explanation = classic.explain(SEED_ROW).as_dict()
    assert explanation["steps"] == [
        {"feature": "petal_length", "op": "<=", "threshold": pytest.approx(2.45, abs=1e-6), "value": 1.5}
    ]
    assert explanation["text"][0] == "petal_length is 1.5, at or below the split at 2.45"
    assert explanation["leaf"]["class"] == "setosa"
    assert explanation["leaf"]["class_counts"] == {"setosa": 40, "versicolor": 0, "virginica": 0}
    assert explanation["text"][-1].startswith("leaf 1 holds 40 training rows (40 setosa, 0 versicolor")


def test_paths_match_sklearn_even_on_split_boundaries(trained: Modeler) -> None:
    """The path is sklearn's decision_path, also for values a float32 step around each threshold."""
    model = trained.ensure_ready()
    tree, estimator = model.predictor.tree, model.estimator
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 8, size=(300, 4))
    for node in np.flatnonzero(~tree.is_leaf):  # each threshold, and its float32 neighbours
        t32 = np.float32(tree.threshold[node])
        for value in (tree.threshold[node], t32, np.nextafter(t32, np.float32(9)), np.nextafter(t32, np.float32(0))):
            row = X[node % len(X)].copy()
            row[tree.feature[node]] = value
            X = np.vstack([X, row])
    expected = estimator.decision_path(pd.DataFrame(X, columns=list(model.features)))
    for i, row in enumerate(X.tolist()):
        assert tree.path_of(row) == expected.indices[expected.indptr[i] : expected.indptr[i + 1]].tolist()
        explanation = explain_row(tree, model.features, row)
        assert explanation.leaf == tree.leaf_of(row)
        assert [s.value for s in explanation.steps] == [row[model.features.index(s.feature)] for s in explanation.steps]


def test_leaf_counts_are_the_training_rows_that_reach_each_leaf() -> None:
    frame = iris_frame()
    X, y = frame[list(IRIS_FEATURES)], frame["species"]
    estimator = DecisionTreeClassifier(random_state=0, max_depth=3).fit(X, y)
    tree = CompiledTree.from_estimator(estimator)
    reached = estimator.apply(X)
    for leaf in np.unique(reached):
        row = X[reached == leaf].iloc[0].tolist()
        explanation = explain_row(tree, IRIS_FEATURES, row)
        expected = y[reached == leaf].value_counts().reindex(tree.classes, fill_value=0)
        assert explanation.class_counts == {c: float(n) for c, n in expected.items()}
        assert explanation.samples == int((reached == leaf).sum())


def test_the_users_value_is_reported_while_the_walk_uses_its_float32(classic: Modeler) -> None:
    # 2.4500000001 as float32 is 2.45f, above the float64 threshold 2.449999988: right branch.
    step = classic.explain({**SEED_ROW, "petal_length": 2.4500000001}).steps[0]
    assert (step.op, step.value) == (">", 2.4500000001)
    assert "2.4500000001" in step.text()


def test_explain_takes_a_batch(trained: Modeler) -> None:
    explanations = trained.explain([SEED_ROW, [6.5, 3.0, 5.5, 2.0]])
    assert [e.label for e in explanations] == ["setosa", "virginica"]


def test_out_of_range_names_the_field_value_and_training_range(trained: Modeler) -> None:
    low, high = trained.metadata["feature_ranges"]["petal_length"]
    assert trained.infer(SEED_ROW).out_of_range() == {}
    (found,) = trained.infer(OUTLIER).out_of_range()[0]
    assert found.as_dict() == {"field": "petal_length", "value": 25.0, "range": [low, high]}
    at_edges = {**SEED_ROW, "petal_length": low}, {**SEED_ROW, "petal_length": high}
    assert trained.infer(list(at_edges)).out_of_range() == {}


# -- /predict -----------------------------------------------------------------------------


def test_explain_true_adds_an_explanation(classic_client: FlaskClient) -> None:
    body = post(classic_client, SEED_ROW, "?explain=true").get_json()
    assert body["Class"] == "setosa"
    assert body["Explanation"]["steps"][0] == {
        "feature": "petal_length",
        "op": "<=",
        "threshold": pytest.approx(2.45, abs=1e-6),
        "value": 1.5,
    }
    assert body["Explanation"]["text"][0] == "petal_length is 1.5, at or below the split at 2.45"


@pytest.mark.parametrize("query", ["", "?explain=false", "?explain=0", "?other=1"])
def test_without_explain_the_answer_is_unchanged(client: FlaskClient, query: str) -> None:
    assert list(post(client, SEED_ROW, query).get_json()) == ["Class", "Input", "Probabilities", "ModelVersion"]


def test_unclear_explain_flag_is_400(client: FlaskClient) -> None:
    res = post(client, SEED_ROW, "?explain=maybe")
    assert res.status_code == 400
    assert res.get_json()["errors"] == [{"row": None, "field": EXPLAIN, "problem": NOT_A_FLAG}]


def test_batch_explanations_and_warnings_go_with_their_rows(client: FlaskClient) -> None:
    body = post(client, {"instances": [SEED_ROW, OUTLIER]}, "?explain=1").get_json()
    first, second = body["Predictions"]
    assert "Warnings" not in first and "Explanation" in first
    assert [w["field"] for w in second["Warnings"]] == ["petal_length"]
    assert second["Explanation"]["steps"]


def test_out_of_range_answers_with_warnings(client: FlaskClient) -> None:
    res = post(client, OUTLIER)
    assert res.status_code == 200
    body = res.get_json()
    assert body["Class"] in {"setosa", "versicolor", "virginica"}
    assert body["Warnings"] == [{"field": "petal_length", "value": 25.0, "range": [1.0, 6.9]}]
    assert "Warnings" not in post(client, SEED_ROW).get_json()


def test_warnings_show_training_ranges_rounded_to_float32_and_model_keeps_them_exact(model_dir: Path) -> None:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(rng.normal(size=(200, 2)), columns=["a", "b"]).assign(label=rng.integers(0, 2, 200))
    modeler = Modeler(model_dir, data=frame, target="label").fit()
    client = create_app({"MODEL_DIR": str(model_dir), "WARMUP": False}, modeler=modeler).test_client()
    exact = client.get("/model").get_json()["feature_ranges"]["a"]
    assert exact == [float(frame["a"].min()), float(frame["a"].max())]  # 16 digits, as the data holds
    body = post(client, {"a": 100.0, "b": 0.0}).get_json()
    (warning,) = body["Warnings"]
    assert warning["field"] == "a" and warning["value"] == 100.0
    for bound, precise in zip(warning["range"], exact, strict=True):
        assert np.float32(bound) == np.float32(precise)  # the same number at the tree's precision
        assert len(repr(bound).lstrip("-").replace(".", "")) <= 9 < len(repr(precise).lstrip("-").replace(".", ""))
