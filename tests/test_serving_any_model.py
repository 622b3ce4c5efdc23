"""Everything that serves, for models other than the Iris tree: the tutorial's forest (fitted on a
bare array, integer labels), a Pipeline with a text column, a regressor that takes missing values
and a classifier without ``predict_proba``, each imported into a model directory of its own and
served by the real app (Flask's test client): ``/predict`` in all its forms, ``/v2``, ``/model``,
training another estimator over HTTP, the metrics, the OpenAPI document and the file scorer.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flask.testing import FlaskClient
from openapi_spec_validator import validate
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from mldeploy.api.v2.protocol import HEADER_LENGTH
from mldeploy.contract import CLASS, INPUT, MODEL_VERSION, PREDICTION, PREDICTIONS, PROBABILITIES, WARNINGS
from mldeploy.http.app import create_app
from mldeploy.scoring.chunk import score_frame
from modeler.modeler import Modeler
from modeler.typed_validation import UNSEEN
from tests.support import metric_value

ADMIN_KEY = "admin-key-for-tests"
ROWS = 2000  # rows compared with the estimator's own answers, per model
PLANS = ["basic", "plus", "pro"]


def app_on(model_dir: Path) -> FlaskClient:
    """The app on ``model_dir``, as served (real error handling), with an admin key."""
    app = create_app({"MODEL_DIR": str(model_dir), "WARMUP": False, "TESTING": False, "ADMIN_KEY": ADMIN_KEY})
    return app.test_client()


def tutorial_forest() -> tuple[RandomForestClassifier, np.ndarray]:
    """The tutorial's forest, exactly as it trains it, and its data."""
    np.random.seed(42)
    X = np.random.randn(1000, 5)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    model = RandomForestClassifier(n_estimators=100, random_state=42)
    model.fit(X, y)
    return model, X


def customers(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "plan": rng.choice(PLANS, n),
            "monthly_spend": rng.gamma(4.0, 10.0, n).round(2),
            "tenure_months": rng.integers(1, 60, n),
        }
    )


def churn_pipeline() -> tuple[Pipeline, pd.DataFrame]:
    """A OneHotEncoder on a text column and a scaler before a LogisticRegression."""
    frame = customers(1500, 7)
    churn = np.where(0.04 * frame["monthly_spend"] - 0.08 * frame["tenure_months"] > 0, "yes", "no")
    prepare = ColumnTransformer(
        [
            ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
            ("numbers", StandardScaler(), ["monthly_spend", "tenure_months"]),
        ]
    )
    return Pipeline([("prepare", prepare), ("model", LogisticRegression())]).fit(frame, churn), frame


def flats(n: int, seed: int, missing: float = 0.1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {"rooms": rng.integers(1, 7, n).astype(float), "area": rng.normal(70, 25, n), "age": rng.uniform(0, 100, n)}
    )
    for column in frame.columns:
        frame.loc[rng.random(n) < missing, column] = np.nan
    return frame


def price_regressor() -> tuple[HistGradientBoostingRegressor, pd.DataFrame]:
    frame = flats(2000, 3)
    price = 1500 * frame["area"].fillna(70) + 8000 * frame["rooms"].fillna(3) - 300 * frame["age"].fillna(50)
    return HistGradientBoostingRegressor(random_state=0, max_iter=50).fit(frame, price), frame


@pytest.fixture(scope="module")
def forest(tmp_path_factory: pytest.TempPathFactory) -> tuple[FlaskClient, RandomForestClassifier, Path]:
    model, _ = tutorial_forest()
    path = tmp_path_factory.mktemp("forest")
    Modeler(path).import_model(model)
    return app_on(path), model, path


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[FlaskClient, Pipeline, Path]:
    model, frame = churn_pipeline()
    path = tmp_path_factory.mktemp("pipeline")
    Modeler(path).import_model(model, sample=frame)
    return app_on(path), model, path


@pytest.fixture(scope="module")
def regressor(tmp_path_factory: pytest.TempPathFactory) -> tuple[FlaskClient, HistGradientBoostingRegressor, Path]:
    model, frame = price_regressor()
    path = tmp_path_factory.mktemp("regressor")
    Modeler(path).import_model(model, sample=frame)
    return app_on(path), model, path


def as_json_rows(frame: pd.DataFrame) -> list[dict]:
    """Rows as a client sends them: NaN as null, numpy scalars as JSON numbers."""
    return json.loads(frame.to_json(orient="records"))


# -- /predict ---------------------------------------------------------------------------------------


def test_the_tutorial_forest_answers_its_own_predict_proba_in_every_form(forest) -> None:
    client, model, _ = forest
    rng = np.random.default_rng(0)
    Q = rng.normal(0, 1.3, (ROWS, 5))
    expected_labels = model.predict(Q).tolist()
    expected = model.predict_proba(Q)

    one = client.post("/predict", json={"features": Q[0].tolist()}).get_json()
    assert one[CLASS] == expected_labels[0] and type(one[CLASS]) is int  # 0/1 stay integers
    assert one[INPUT] == {f"x{j}": Q[0, j] for j in range(5)}
    assert one[PROBABILITIES] == {"0": expected[0, 0], "1": expected[0, 1]}
    named = client.post("/predict", json={f"x{j}": Q[0, j] for j in range(5)}).get_json()
    assert named == one

    names = [f"x{j}" for j in range(5)]
    forms = {
        "records": [dict(zip(names, row, strict=True)) for row in Q.tolist()],
        "instances": {"instances": Q.tolist()},
        "columns": {"columns": names[::-1], "data": Q[:, ::-1].tolist()},
    }
    for form, body in forms.items():
        answer = client.post("/predict", json=body).get_json()
        assert [p[CLASS] for p in answer[PREDICTIONS]] == expected_labels, form
        got = np.array([[p[PROBABILITIES]["0"], p[PROBABILITIES]["1"]] for p in answer[PREDICTIONS]])
        np.testing.assert_array_equal(got, expected, err_msg=form)


def test_the_forest_explains_and_a_general_model_refuses_to(forest, pipeline) -> None:
    client, _, _ = forest
    body = client.post("/predict?explain=true", json={"features": [0.5, 1.2, -0.3, 0.8, -1.5]}).get_json()
    explanation = body["Explanation"]
    assert explanation["answer"] == body[PROBABILITIES][str(body[CLASS])]
    assert abs(explanation["bias"] + sum(explanation["contributions"].values()) - explanation["answer"]) < 1e-9
    general = pipeline[0].post("/predict?explain=true", json={"plan": "pro", "monthly_spend": 1.0, "tenure_months": 2})
    assert general.status_code == 400
    assert [(e["field"], "no explanations" in e["problem"]) for e in general.get_json()["errors"]] == [
        ("explain", True)
    ]


def test_the_pipeline_answers_as_itself_with_typed_errors_and_unseen_categories(pipeline) -> None:
    client, model, _ = pipeline
    frame = customers(ROWS, 11)
    answer = client.post("/predict", json=as_json_rows(frame)).get_json()
    assert [p[CLASS] for p in answer[PREDICTIONS]] == model.predict(frame).tolist()
    got = np.array([[p[PROBABILITIES]["no"], p[PROBABILITIES]["yes"]] for p in answer[PREDICTIONS]])
    np.testing.assert_array_equal(got, model.predict_proba(frame))
    # Every plan was seen in training: only numbers beyond the sample's ranges are flagged.
    assert {w["field"] for p in answer[PREDICTIONS] for w in p.get(WARNINGS, [])} <= {"monthly_spend", "tenure_months"}

    gold = {"plan": "gold", "monthly_spend": 42.0, "tenure_months": 18}
    one = client.post("/predict", json=gold).get_json()
    assert one[CLASS] == model.predict(pd.DataFrame([gold]))[0]
    assert one[WARNINGS] == [{"field": "plan", "value": "gold", "problem": UNSEEN, "categories": PLANS}]
    assert one[INPUT] == gold
    positional = client.post("/predict", json={"features": ["gold", 42.0, 18]}).get_json()
    assert positional == one

    bad = client.post("/predict", json=[gold, {"plan": 5, "monthly_spend": "x", "tenure_months": 1.5}])
    assert bad.status_code == 400
    assert [(e["row"], e["field"]) for e in bad.get_json()["errors"]] == [
        (1, "plan"),
        (1, "monthly_spend"),
        (1, "tenure_months"),
    ]
    nulls = client.post("/predict", json={**gold, "plan": None})
    assert nulls.status_code == 400 and nulls.get_json()["errors"][0]["field"] == "plan"


def test_the_regressor_answers_prediction_and_takes_null(regressor) -> None:
    client, model, _ = regressor
    frame = flats(ROWS, 5, missing=0.2)
    answer = client.post("/predict", json=as_json_rows(frame)).get_json()
    assert all(set(p) <= {PREDICTION, WARNINGS} for p in answer[PREDICTIONS])
    np.testing.assert_array_equal([p[PREDICTION] for p in answer[PREDICTIONS]], model.predict(frame))
    one = client.post("/predict", json={"rooms": 3, "area": None, "age": 12.5}).get_json()
    assert list(one) == [PREDICTION, INPUT, MODEL_VERSION]
    assert one[INPUT] == {"rooms": 3.0, "area": None, "age": 12.5}
    assert one[PREDICTION] == model.predict(pd.DataFrame([{"rooms": 3.0, "area": np.nan, "age": 12.5}]))[0]
    far = client.post("/predict", json={"rooms": 30, "area": None, "age": 12.5}).get_json()
    assert [w["field"] for w in far[WARNINGS]] == ["rooms"]


def test_a_classifier_without_predict_proba_answers_no_probabilities(tmp_path: Path) -> None:
    _, X = tutorial_forest()
    ridge = RidgeClassifier().fit(X, (X[:, 0] + X[:, 1] > 0).astype(int))
    Modeler(tmp_path).import_model(ridge)
    client = app_on(tmp_path)
    one = client.post("/predict", json={"features": [0.5, 1.2, -0.3, 0.8, -1.5]}).get_json()
    assert list(one) == [CLASS, INPUT, MODEL_VERSION] and one[CLASS] == 1
    Q = np.random.default_rng(1).normal(size=(500, 5))
    batch = client.post("/predict", json={"instances": Q.tolist()}).get_json()
    assert [p for p in batch[PREDICTIONS]] == [{CLASS: c} for c in ridge.predict(Q).tolist()]
    v2 = client.get("/v2/models/iris").get_json()
    assert [o["name"] for o in v2["outputs"]] == ["label"]


def test_the_prediction_log_keeps_every_kinds_batch_answer_as_it_was_answered(forest, pipeline, regressor, tmp_path):
    """A batch answered by arrays is logged as its columns (tag C), and read back as the rows the
    client was sent, for a forest, a Pipeline, a regressor with nulls and a classifier without
    probabilities; a batch validated column by column keeps its inputs by column and reads back
    as its rows; a single row and the Iris tree's table answers keep their own forms."""
    import orjson

    from mldeploy.monitoring.answered import answered_rows
    from mldeploy.monitoring.packing import ANSWER_COLUMNS, unpack_inputs, unpack_outputs
    from modeler.typed_columns import TypedColumns

    _, X = tutorial_forest()
    typed = 0
    ridge_dir = tmp_path / "ridge"
    Modeler(ridge_dir).import_model(RidgeClassifier().fit(X, (X[:, 0] + X[:, 1] > 0).astype(int)))
    Q = np.random.default_rng(3).normal(size=(300, 5)).tolist()
    batches = [
        (forest[2], {"instances": Q}),
        (pipeline[2], as_json_rows(customers(300, 4))),
        (regressor[2], as_json_rows(flats(300, 5))),
        (ridge_dir, {"instances": Q}),
    ]
    for model_dir, body in batches:
        modeler = Modeler(model_dir)
        rows = body["instances"] if isinstance(body, dict) else body
        answered = app_on(model_dir).post("/predict", json=body).get_json()[PREDICTIONS]
        answered = [{k: v for k, v in row.items() if k != WARNINGS} for row in answered]  # not logged
        result = modeler.infer(rows)
        inputs, outputs = answered_rows(result)
        assert outputs[:1] == ANSWER_COLUMNS, model_dir
        if isinstance(result.rows, TypedColumns):  # the Pipeline's and the regressor's: by column
            assert b'"by_column"' in inputs, model_dir
            by_rows = [dict(zip(result.features, row, strict=True)) for row in result.rows.tolist()]
            assert unpack_inputs(inputs) == by_rows, model_dir
            typed += 1
        assert orjson.loads(orjson.dumps(unpack_outputs(outputs))) == answered, model_dir
    assert typed == 2  # the Pipeline's text column and the regressor's nulls, both validated by column
    for model_dir, body in [(forest[2], {"features": Q[0]}), (tmp_path / "iris", None)]:
        modeler = Modeler(model_dir)
        one = modeler.infer(
            body["features"]
            if body
            else {"sepal_length": 5.0, "sepal_width": 3.2, "petal_length": 1.5, "petal_width": 0.3}
        )
        _, outputs = answered_rows(one)
        assert outputs[:1] != ANSWER_COLUMNS
        (logged,) = unpack_outputs(outputs)
        assert logged[CLASS] == one.answers.label(0)


# -- /model, train, metrics ----------------------------------------------------------------------------


def test_model_shows_the_schema(pipeline, regressor) -> None:
    shown = pipeline[0].get("/model").get_json()
    fields = {f["name"]: f for f in shown["schema"]["fields"]}
    assert (fields["plan"]["type"], fields["plan"]["categories"]) == ("text", PLANS)
    assert fields["tenure_months"]["type"] == "integer" and shown["task"] == "classification"
    shown = regressor[0].get("/model").get_json()
    assert shown["task"] == "regression" and all(f["nullable"] for f in shown["schema"]["fields"])


def test_the_iris_default_shows_its_schema_of_numbers(client: FlaskClient) -> None:
    shown = client.get("/model").get_json()
    assert [(f["name"], f["type"], f["nullable"]) for f in shown["schema"]["fields"]] == [
        (name, "number", False) for name in ("sepal_length", "sepal_width", "petal_length", "petal_width")
    ]


def test_train_another_estimator_over_http(tmp_path: Path) -> None:
    client = app_on(tmp_path)
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    made = client.post(
        "/model/train", json={"estimator": "RandomForestClassifier", "params": {"n_estimators": 7}}, headers=auth
    )
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["estimator"] == "RandomForestClassifier" and made.get_json()["predictor"] == "ensemble"
    assert client.get("/model").get_json()["version"] == made.get_json()["version"]
    explained = client.post("/predict?explain=true", json={"features": [5.0, 3.2, 1.5, 0.3]}).get_json()
    assert explained[CLASS] == "setosa" and "contributions" in explained["Explanation"]
    bad = client.post(
        "/model/train", json={"estimator": "RandomForestClassifier", "params": {"n_estimators": -1}}, headers=auth
    )
    assert bad.status_code == 400 and "n_estimators" in json.dumps(bad.get_json()["errors"])
    unknown = client.post("/model/train", json={"estimator": "NoSuchForest"}, headers=auth)
    assert unknown.status_code == 400 and unknown.get_json()["errors"][0]["field"] == "estimator"
    assert client.post("/model/train", json={"estimator": 5}, headers=auth).status_code == 400


def test_metrics_count_integer_labels_and_regressor_rows(forest, regressor) -> None:
    client = forest[0]
    before = metric_value(client.get("/metrics").get_data(as_text=True), "mldeploy_predictions_total", **{"class": "1"})
    client.post("/predict", json={"features": [0.5, 1.2, -0.3, 0.8, -1.5]})
    after = metric_value(client.get("/metrics").get_data(as_text=True), "mldeploy_predictions_total", **{"class": "1"})
    assert after == before + 1
    client = regressor[0]
    before = metric_value(client.get("/metrics").get_data(as_text=True), "mldeploy_predictions_total", **{"class": ""})
    assert client.post("/predict", json=[{"rooms": 1, "area": 50, "age": 1}] * 3).status_code == 200
    after = metric_value(client.get("/metrics").get_data(as_text=True), "mldeploy_predictions_total", **{"class": ""})
    assert after == before + 3


# -- /v2 ---------------------------------------------------------------------------------------------


def test_v2_metadata_types_each_input_after_its_field(pipeline, regressor, forest) -> None:
    meta = pipeline[0].get("/v2/models/iris").get_json()
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("plan", "BYTES"),
        ("monthly_spend", "FP64"),
        ("tenure_months", "INT64"),
    ]
    assert meta["inputs"][0]["parameters"]["categories"] == PLANS
    assert regressor[0].get("/v2/models/iris").get_json()["outputs"] == [
        {"name": "prediction", "datatype": "FP64", "shape": [-1]}
    ]
    assert forest[0].get("/v2/models/iris").get_json()["outputs"][0] == {
        "name": "label",
        "datatype": "INT64",
        "shape": [-1],
    }


def test_v2_typed_tensors_in_json_and_binary(pipeline) -> None:
    client, model, _ = pipeline
    frame = customers(50, 13)
    inputs = [
        {"name": "plan", "datatype": "BYTES", "shape": [50], "data": frame["plan"].tolist()},
        {"name": "monthly_spend", "datatype": "FP64", "shape": [50], "data": frame["monthly_spend"].tolist()},
        {"name": "tenure_months", "datatype": "INT64", "shape": [50, 1], "data": frame["tenure_months"].tolist()},
    ]
    res = client.post("/v2/models/iris/infer", json={"inputs": inputs}).get_json()
    outputs = {o["name"]: o for o in res["outputs"]}
    assert outputs["label"]["datatype"] == "BYTES" and outputs["label"]["data"] == model.predict(frame).tolist()
    np.testing.assert_array_equal(np.reshape(outputs["probabilities"]["data"], (50, 2)), model.predict_proba(frame))
    # The binary tensor extension: BYTES as 4-byte lengths and UTF-8, INT64 little-endian.
    plan = b"".join(struct.pack("<I", len(p)) + p.encode() for p in frame["plan"])
    tenure = frame["tenure_months"].to_numpy(dtype="<i8").tobytes()
    header = json.dumps(
        {
            "inputs": [
                {"name": "plan", "datatype": "BYTES", "shape": [50], "parameters": {"binary_data_size": len(plan)}},
                inputs[1],
                {"name": "tenure_months", "datatype": "INT64", "shape": [50], "parameters": {"binary_data_size": 400}},
            ],
            "outputs": [{"name": "label"}],
        }
    ).encode()
    binary = client.post(
        "/v2/models/iris/infer", data=header + plan + tenure, headers={HEADER_LENGTH: str(len(header))}
    ).get_json()
    assert binary["outputs"] == [outputs["label"]]
    for wrong, needle in [
        ({**inputs[0], "data": [1] * 50}, "only strings"),
        ({**inputs[0], "datatype": "FP64"}, 'datatype "FP64" is not supported: send BYTES'),
        ({**inputs[2], "data": [1.5] * 50}, "only integers"),
    ]:
        bad = client.post(
            "/v2/models/iris/infer", json={"inputs": [wrong, *[i for i in inputs if i["name"] != wrong["name"]]]}
        )
        assert bad.status_code == 400 and needle in bad.get_json()["error"], bad.get_json()


def test_v2_regressor_with_nulls_and_booleans(regressor, tmp_path: Path) -> None:
    client, model, _ = regressor
    inputs = [
        {"name": "rooms", "datatype": "FP64", "shape": [2], "data": [3, None]},
        {"name": "area", "datatype": "FP32", "shape": [2], "data": [None, 55.5]},
        {"name": "age", "datatype": "FP64", "shape": [2], "data": [12.5, 40]},
    ]
    res = client.post("/v2/models/iris/infer", json={"inputs": inputs}).get_json()
    (output,) = res["outputs"]
    expected = model.predict(pd.DataFrame({"rooms": [3, np.nan], "area": [np.nan, 55.5], "age": [12.5, 40]}))
    assert output["name"] == "prediction" and output["data"] == expected.tolist()
    # A boolean field takes BOOL tensors (JSON booleans or one byte each).
    frame = pd.DataFrame({"member": [True, False] * 50, "spend": np.arange(100.0)})
    flag = LogisticRegression().fit(frame, (frame["member"] & (frame["spend"] > 20)).astype(int))
    Modeler(tmp_path).import_model(flag, sample=frame)
    flags = app_on(tmp_path)
    body = {
        "inputs": [
            {"name": "member", "datatype": "BOOL", "shape": [2], "data": [True, False]},
            {"name": "spend", "datatype": "FP64", "shape": [2], "data": [90.0, 90.0]},
        ]
    }
    labels = flags.post("/v2/models/iris/infer", json=body).get_json()["outputs"][0]["data"]
    assert labels == flag.predict(pd.DataFrame({"member": [True, False], "spend": [90.0, 90.0]})).tolist()
    wrong = flags.post(
        "/v2/models/iris/infer", json={"inputs": [{**body["inputs"][0], "data": [1, 0]}, body["inputs"][1]]}
    )
    assert wrong.status_code == 400 and "only booleans" in wrong.get_json()["error"]


# -- OpenAPI -----------------------------------------------------------------------------------------


def document(client: FlaskClient) -> dict:
    client.get("/model")  # loads the model: the document then describes it
    spec = client.get("/openapi.json").get_json()
    validate(spec)
    return spec["components"]["schemas"]


def test_openapi_describes_this_models_fields_and_answers(pipeline, regressor, forest) -> None:
    schemas = document(pipeline[0])
    row = schemas["Row"]["properties"]
    assert (row["plan"]["type"], row["monthly_spend"]["type"], row["tenure_months"]["type"]) == (
        "string",
        "number",
        "integer",
    )
    assert "basic, plus, pro" in row["plan"]["description"]
    assert schemas["Prediction"]["required"] == [CLASS, INPUT, PROBABILITIES, MODEL_VERSION]
    assert schemas["Prediction"]["properties"][CLASS] == {"type": "string", "enum": ["no", "yes"]}
    assert [s["type"] for s in schemas["FeatureValues"]["prefixItems"]] == ["string", "number", "integer"]

    schemas = document(regressor[0])
    assert schemas["Row"]["properties"]["area"]["type"] == ["number", "null"]
    assert schemas["Prediction"]["required"] == [PREDICTION, INPUT, MODEL_VERSION]
    assert CLASS not in schemas["Prediction"]["properties"]
    assert schemas["BatchPrediction"]["properties"][PREDICTIONS]["items"]["required"] == [PREDICTION]

    schemas = document(forest[0])
    assert schemas["Prediction"]["properties"][CLASS] == {"type": "integer", "enum": [0, 1]}
    assert schemas["Row"]["required"] == [f"x{j}" for j in range(5)]


def v2_output_names(client: FlaskClient) -> list[str]:
    outputs = document(client)["V2InferenceRequest"]["properties"]["outputs"]
    return outputs["items"]["properties"]["name"]["enum"]


def test_openapi_offers_only_the_v2_outputs_this_model_answers(pipeline, regressor) -> None:
    """Found by schemathesis' command line: the document offered every kind's outputs, and a
    classifier refuses ``prediction`` (400) as a regressor refuses ``label``."""
    assert v2_output_names(pipeline[0]) == ["label", "probabilities"]
    assert v2_output_names(regressor[0]) == ["prediction"]


# -- file scoring ------------------------------------------------------------------------------------


def test_scoring_a_chunk_of_text_and_missing_values(pipeline, regressor) -> None:
    _, model, path = pipeline
    loaded = Modeler(path).ensure_ready()
    frame = pd.DataFrame(
        {
            "plan": ["pro", "5", "gold", None],
            "monthly_spend": ["42", "10", "x", "3"],
            "tenure_months": ["18", "3", "2", "1"],
        }
    )
    scored = score_frame(loaded, frame, text=True)
    assert scored.failed_rows == 2
    assert scored.errors[["row", "field", "problem"]].values.tolist() == [
        [2, "monthly_spend", "not a number"],
        [3, "plan", "missing"],
    ]
    good = pd.DataFrame({"plan": ["pro", "5"], "monthly_spend": [42.0, 10.0], "tenure_months": [18, 3]})
    assert scored.scored[CLASS].tolist() == model.predict(good).tolist()
    np.testing.assert_array_equal(scored.scored[["no", "yes"]].to_numpy(), model.predict_proba(good))
    assert scored.scored["Warnings"].tolist() == ["", "plan"]  # the text "5" is a category never seen

    _, model, path = regressor
    loaded = Modeler(path).ensure_ready()
    frame = flats(300, 9, missing=0.3)
    scored = score_frame(loaded, frame, text=False)
    assert scored.failed_rows == 0 and PREDICTION in scored.scored and CLASS not in scored.scored
    np.testing.assert_array_equal(scored.scored[PREDICTION].to_numpy(), model.predict(frame))
