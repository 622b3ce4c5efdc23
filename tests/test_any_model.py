"""Any scikit-learn model, imported or trained, answers exactly as the estimator itself does.

For each kind (the tutorial's forest on 5 random features with 0/1 labels, ExtraTrees,
GradientBoosting, HistGradientBoosting with missing values, a Pipeline with a text column,
regressors, an SVC without probabilities, KNN) a Modeler that imported it must give the same
labels, probabilities and values as the estimator's own predict/predict_proba on thousands of
rows, through the one-row and the batch paths, before and after a reload from disk. Bad input
names its row and field; an unseen category is answered with a warning.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    ExtraTreesClassifier,
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.svm import SVC

from modeler.errors import NULL, InvalidInput
from modeler.load_errors import UntrustedType
from modeler.modeler import Modeler
from modeler.predictors.base import EXPLAIN_FIELD, PROBABILITIES, VALUE
from modeler.typed_validation import NOT_TEXT, UNSEEN, CategoryWarning
from tests.trusted_helpers import WritesOnLoad

N_ROWS = 3000  # rows compared per kind
N_SINGLE = 200  # of which also one by one


def tutorial_forest() -> tuple[RandomForestClassifier, np.ndarray]:
    """The tutorial's model, exactly as it trains it."""
    np.random.seed(42)
    X = np.random.randn(1000, 5)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return RandomForestClassifier(n_estimators=100, random_state=42).fit(X, y), X


def _numeric(kind: str) -> tuple[object, np.ndarray]:
    rng = np.random.default_rng(7)
    X = rng.standard_normal((800, 5))
    labels = (X[:, 0] - X[:, 2] > 0).astype(int)
    value = X @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + rng.normal(scale=0.1, size=800)
    if kind == "extra_trees":
        return ExtraTreesClassifier(n_estimators=30, random_state=0).fit(X, labels), X
    if kind == "gradient_boosting":
        return GradientBoostingClassifier(n_estimators=30, random_state=0).fit(X, np.array(["no", "yes"])[labels]), X
    if kind == "hist_gradient_boosting":
        X = X.copy()
        X[rng.random(X.shape) < 0.1] = np.nan
        return HistGradientBoostingClassifier(max_iter=30, random_state=0).fit(X, labels), X
    if kind == "hist_regressor":
        X = X.copy()
        X[rng.random(X.shape) < 0.1] = np.nan
        return HistGradientBoostingRegressor(max_iter=30, random_state=0).fit(X, value), X
    if kind == "forest_regressor":
        return RandomForestRegressor(n_estimators=20, random_state=0).fit(X, value), X
    if kind == "linear_regression":
        return LinearRegression().fit(X, value), X
    if kind == "svc":
        return SVC().fit(X, labels), X
    if kind == "knn":
        return KNeighborsClassifier().fit(X, labels), X
    raise AssertionError(kind)


KINDS = (
    "extra_trees",
    "gradient_boosting",
    "hist_gradient_boosting",
    "hist_regressor",
    "forest_regressor",
    "linear_regression",
    "svc",
    "knn",
)
PREDICTORS = {
    "extra_trees": "ensemble",
    "gradient_boosting": "ensemble",
    "hist_gradient_boosting": "ensemble",
    "hist_regressor": "ensemble",
    "forest_regressor": "ensemble",
    "linear_regression": "general",
    "svc": "general",
    "knn": "general",
}


def _queries(X: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Rows like the training rows, with their missing values where they had some."""
    rng = np.random.default_rng(seed)
    Q = rng.standard_normal((n, X.shape[1])) * 1.5
    if np.isnan(X).any():
        Q[rng.random(Q.shape) < 0.1] = np.nan
    return Q


def _assert_same_answers(modeler: Modeler, estimator: object, Q: np.ndarray) -> None:
    values = modeler.predict(Q)
    expected = estimator.predict(Q)
    if modeler.ensure_ready().predictor.can(VALUE):
        assert np.array_equal(np.array(values, dtype=np.float64), expected.astype(np.float64))
    else:
        assert values == expected.tolist()  # the labels in their own type: 0/1 stay ints
    if hasattr(estimator, "predict_proba"):
        got = pd.DataFrame(modeler.predict_proba(Q)).to_numpy()
        assert np.array_equal(got, estimator.predict_proba(Q))
    # One row at a time against the estimator on that one row (a matrix product on one row may
    # round differently than within a batch, in scikit-learn as here).
    rows = [[None if v != v else v for v in row] for row in Q[:N_SINGLE].tolist()]
    one_by_one = [estimator.predict(Q[i : i + 1])[0].item() for i in range(N_SINGLE)]
    assert [modeler.predict(row) for row in rows] == one_by_one


def test_the_tutorial_forest_answers_as_its_own_predict(tmp_path: Path) -> None:
    forest, X = tutorial_forest()
    modeler = Modeler(tmp_path / "models").import_model(forest)
    metadata = modeler.metadata
    assert metadata["predictor"] == "ensemble" and metadata["source"] == "imported"
    assert metadata["classes"] == [0, 1] and metadata["task"] == "classification"
    assert metadata["schema"]["positional"] and modeler.features == ("x0", "x1", "x2", "x3", "x4")
    Q = _queries(X, N_ROWS, seed=1)
    _assert_same_answers(modeler, forest, Q)
    answer = modeler.predict(Q[0].tolist())
    assert type(answer) is int
    assert set(modeler.predict_proba(Q[0].tolist())) == {"0", "1"}
    _assert_same_answers(Modeler(tmp_path / "models"), forest, Q)  # from the saved arrays


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_answers_as_the_estimator(kind: str, tmp_path: Path) -> None:
    estimator, X = _numeric(kind)
    modeler = Modeler(tmp_path / "models").import_model(estimator)
    assert modeler.metadata["predictor"] == PREDICTORS[kind]
    Q = _queries(X, N_ROWS, seed=2)
    _assert_same_answers(modeler, estimator, Q)
    reloaded = Modeler(tmp_path / "models")
    _assert_same_answers(reloaded, estimator, Q[:500])
    predictor = reloaded.ensure_ready().predictor
    assert predictor.can(PROBABILITIES) == hasattr(estimator, "predict_proba")
    assert predictor.can(VALUE) == kind.endswith(("regressor", "regression"))


@pytest.mark.parametrize("kind", ["gradient_boosting", "hist_regressor", "forest_regressor"])
def test_ensemble_explanations_sum_to_the_answer(kind: str, tmp_path: Path) -> None:
    estimator, X = _numeric(kind)
    modeler = Modeler(tmp_path / "models").import_model(estimator)
    Q = _queries(X, 50, seed=3)
    for explanation, row in zip(modeler.explain(Q), Q.tolist(), strict=True):
        found = explanation.as_dict()
        assert abs(found["bias"] + sum(found["contributions"].values()) - found["answer"]) <= 1e-9
        if found["output"] is None:
            assert found["answer"] == pytest.approx(float(estimator.predict([row])[0]), abs=1e-9)
        else:
            k = list(estimator.classes_).index(found["output"])
            assert found["answer"] == pytest.approx(float(estimator.predict_proba([row])[0, k]), abs=1e-9)


def test_a_model_without_an_explanation_says_so(tmp_path: Path) -> None:
    estimator, X = _numeric("linear_regression")
    modeler = Modeler(tmp_path / "models").import_model(estimator)
    with pytest.raises(InvalidInput) as caught:
        modeler.explain(X[0].tolist())
    assert [e.field for e in caught.value.errors] == [EXPLAIN_FIELD]


# -- a Pipeline with a text column ------------------------------------------------------------


def _mixed(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "city": rng.choice(["paris", "lyon", "nice"], n),
            "age": rng.integers(18, 80, n),
            "income": rng.normal(30_000, 8_000, n),
        }
    )


@pytest.fixture(scope="module")
def pipeline() -> tuple[object, pd.DataFrame]:
    frame = _mixed(1500, 0)
    y = ((frame["income"] > 30_000) ^ (frame["city"] == "nice")).astype(int)
    columns = ColumnTransformer(
        [("city", OneHotEncoder(handle_unknown="ignore"), ["city"]), ("numbers", StandardScaler(), ["age", "income"])]
    )
    return make_pipeline(columns, LogisticRegression()).fit(frame, y), frame


def test_a_pipeline_with_a_text_column_answers_as_itself(pipeline: tuple, tmp_path: Path) -> None:
    model, frame = pipeline
    modeler = Modeler(tmp_path / "models").import_model(model, sample=frame)
    fields = {f["name"]: f for f in modeler.metadata["schema"]["fields"]}
    assert fields["city"]["type"] == "text" and fields["city"]["categories"] == ["lyon", "nice", "paris"]
    assert fields["age"]["type"] == "integer" and fields["income"]["type"] == "number"
    Q = _mixed(N_ROWS, 5)
    assert modeler.predict(Q) == model.predict(Q).tolist()
    assert np.array_equal(modeler.predict_proba(Q).to_numpy(), model.predict_proba(Q))
    records = Q.to_dict("records")
    assert modeler.predict(records) == model.predict(Q).tolist()
    assert [modeler.predict(r) for r in records[:N_SINGLE]] == model.predict(Q[:N_SINGLE]).tolist()
    assert Modeler(tmp_path / "models").predict(records[:500]) == model.predict(Q[:500]).tolist()


def test_bad_typed_input_names_the_row_and_the_field(pipeline: tuple, tmp_path: Path) -> None:
    model, frame = pipeline
    modeler = Modeler(tmp_path / "models").import_model(model, sample=frame)
    good = {"city": "lyon", "age": 40, "income": 31_000.0}
    cases = [
        ({**good, "city": 3}, "city", NOT_TEXT),
        ({**good, "income": "lots"}, "income", "not a number"),
        ({**good, "age": None}, "age", NULL),
        ({**good, "age": 40.5}, "age", "not an integer"),
    ]
    for row, field, problem in cases:
        with pytest.raises(InvalidInput) as caught:
            modeler.predict([good, row])
        assert [(e.row, e.field, e.problem) for e in caught.value.errors] == [(1, field, problem)]


def test_an_unseen_category_is_answered_with_a_warning(pipeline: tuple, tmp_path: Path) -> None:
    model, frame = pipeline
    modeler = Modeler(tmp_path / "models").import_model(model, sample=frame)
    row = {"city": "brest", "age": 40, "income": 31_000.0}
    result = modeler.infer(row)
    assert result.labels == model.predict(pd.DataFrame([row])).tolist()
    (warning,) = result.out_of_range()[0]
    assert isinstance(warning, CategoryWarning) and warning.as_dict()["problem"] == UNSEEN
    assert result.input_rows() == [row]


def test_a_null_is_accepted_where_the_model_takes_missing_values(tmp_path: Path) -> None:
    estimator, _ = _numeric("hist_regressor")
    modeler = Modeler(tmp_path / "models").import_model(estimator)
    assert all(f["nullable"] for f in modeler.metadata["schema"]["fields"])
    row = [None, 0.5, None, 1.0, -1.0]
    assert modeler.predict(row) == float(estimator.predict([[np.nan, 0.5, np.nan, 1.0, -1.0]])[0])
    forest, _ = _numeric("linear_regression")
    strict = Modeler(tmp_path / "strict").import_model(forest)
    with pytest.raises(InvalidInput) as caught:
        strict.predict(row)
    assert [(e.row, e.field, e.problem) for e in caught.value.errors] == [(0, "x0", NULL), (0, "x2", NULL)]


# -- files --------------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".joblib", ".pkl", ".pickle", ".skops"])
def test_import_from_every_file_kind(suffix: str, tmp_path: Path) -> None:
    forest, X = tutorial_forest()
    path = tmp_path / f"model{suffix}"
    if suffix == ".skops":
        sio.dump(forest, path)
    elif suffix == ".pickle":
        path.write_bytes(pickle.dumps(forest))
    else:
        joblib.dump(forest, path)
    modeler = Modeler(tmp_path / "models").import_model(path)
    assert modeler.metadata["imported"]["file"] == path.name
    Q = _queries(X, 1000, seed=4)
    assert modeler.predict(Q) == forest.predict(Q).tolist()


def test_a_pickle_that_would_create_a_file_is_refused_and_the_file_never_appears(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(WritesOnLoad(str(marker))))
    modeler = Modeler(tmp_path / "models", lazy_train=False)
    with pytest.raises(UntrustedType) as caught:
        modeler.import_model(path)
    assert "WritesOnLoad" in str(caught.value)
    assert not marker.exists()
    assert modeler.versions() == []  # nothing was saved


def test_an_imported_version_keeps_its_sha256_check(tmp_path: Path) -> None:
    forest, _ = tutorial_forest()
    models = tmp_path / "models"
    version = Modeler(models).import_model(forest).version
    artifact = models / "versions" / version / "model.joblib"
    artifact.write_bytes(artifact.read_bytes()[:-10])
    from modeler.errors import ModelIntegrityError

    with pytest.raises(ModelIntegrityError, match="sha256"):
        Modeler(models, lazy_train=False).load()


# -- training by name ---------------------------------------------------------------------------


def test_train_any_estimator_by_name_with_its_own_parameter_rules(tmp_path: Path) -> None:
    modeler = Modeler(tmp_path / "models", estimator="RandomForestClassifier", n_estimators=10)
    assert modeler.predict([5.0, 3.2, 1.5, 0.3]) == "setosa"
    assert modeler.metadata["estimator"] == "RandomForestClassifier"
    modeler.fit(estimator="KNeighborsClassifier", params={"n_neighbors": 3})
    assert modeler.metadata["predictor"] == "general" and modeler.metadata["params"]["n_neighbors"] == 3
    with pytest.raises(InvalidInput) as caught:
        modeler.fit(estimator="KNeighborsClassifier", params={"n_neighbors": -1, "colour": 2})
    assert [e.field for e in caught.value.errors] == ["n_neighbors", "colour"]
    with pytest.raises(InvalidInput) as caught:
        modeler.fit(estimator="NoSuchModel")
    assert [e.field for e in caught.value.errors] == ["estimator"]


def test_the_default_is_still_a_tree_on_iris(tmp_path: Path) -> None:
    modeler = Modeler(tmp_path / "models")
    assert modeler.predict({"sepal_length": 5.0, "sepal_width": 3.2, "petal_length": 1.5, "petal_width": 0.3}) == (
        "setosa"
    )
    metadata = modeler.metadata
    assert metadata["predictor"] == "tree" and metadata["estimator"] == "DecisionTreeClassifier"
    assert modeler.ensure_ready().schema.numeric_only


# -- the command line, as a user runs it --------------------------------------------------------


def test_import_and_train_on_the_command_line(pipeline: tuple, tmp_path: Path) -> None:
    import json

    from mldeploy.cli.exit_codes import EXIT_INVALID_INPUT
    from tests.support import run_cli

    model, frame = pipeline
    models = tmp_path / "models"
    path, sample = tmp_path / "model.pkl", tmp_path / "sample.csv"
    joblib.dump(model, path)
    frame.to_csv(sample, index=False)
    imported = run_cli(models, "import", str(path), "--sample", str(sample))
    assert imported.returncode == 0, imported.stderr
    metadata = json.loads(imported.stdout)
    assert metadata["source"] == "imported" and metadata["estimator"] == "Pipeline"
    assert [f["type"] for f in metadata["schema"]["fields"]] == ["text", "integer", "number"]
    assert Modeler(models).predict(frame.head(50)) == model.predict(frame.head(50)).tolist()

    trained = run_cli(tmp_path / "trained", "train", "--estimator", "ExtraTreesClassifier", "--param", "n_estimators=5")
    assert trained.returncode == 0, trained.stderr
    assert json.loads(trained.stdout)["estimator"] == "ExtraTreesClassifier"
    bad = run_cli(tmp_path / "trained", "train", "--estimator", "ExtraTreesClassifier", "--param", "n_estimators=0")
    assert bad.returncode == EXIT_INVALID_INPUT and "n_estimators" in bad.stderr
    refused = run_cli(tmp_path / "trained", "import", str(tmp_path / "nothing.pkl"))
    assert refused.returncode != 0 and "not found" in refused.stderr


@pytest.mark.parametrize("kind", ["tutorial", "hist_regressor"])
def test_the_served_ensemble_is_identical_on_100000_inputs_built_on_its_thresholds(kind: str, tmp_path: Path) -> None:
    from tests.test_compiled_ensemble import inputs_on_thresholds

    estimator, X = tutorial_forest() if kind == "tutorial" else _numeric(kind)
    Modeler(tmp_path / "models").import_model(estimator)
    served = Modeler(tmp_path / "models")  # from the saved arrays, as a server answers
    predictor = served.ensure_ready().predictor
    Q = inputs_on_thresholds(predictor.ensemble, X, 100_000, seed=5)
    answers = served.infer(Q)
    if kind == "tutorial":
        assert answers.labels == estimator.predict(Q).tolist()
        assert np.array_equal(answers.probabilities, estimator.predict_proba(Q))
    else:
        assert np.array_equal(answers.values(), estimator.predict(Q))


def test_a_modeler_trains_the_estimator_instance_it_is_given(tmp_path: Path) -> None:
    from sklearn.datasets import load_iris

    unfitted = make_pipeline(StandardScaler(), LogisticRegression())
    modeler = Modeler(tmp_path / "models", estimator=unfitted)
    row = [5.0, 3.2, 1.5, 0.3]
    assert modeler.predict(row) == "setosa"
    metadata = modeler.metadata
    assert metadata["estimator"] == "Pipeline" and metadata["predictor"] == "general"
    assert not hasattr(unfitted, "n_features_in_")  # a clone was fitted, not the caller's object
    iris = load_iris(as_frame=True).data.set_axis(list(modeler.features), axis=1)
    fitted = modeler.ensure_ready().estimator
    assert modeler.predict(iris) == fitted.predict(iris).tolist()
