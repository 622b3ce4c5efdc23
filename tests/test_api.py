"""The HTTP contract through Flask's test client, including one app outside testing mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from mldeploy.http.app import create_app
from mldeploy.settings import DEFAULTS
from modeler import errors
from modeler.modeler import Modeler
from modeler.store import ARTIFACT_FILE, VERSIONS_DIR
from tests.support import SEED_ROW

VIRGINICA = {"sepal_length": 6.5, "sepal_width": 3.0, "petal_length": 5.5, "petal_width": 2.0}


def post(client: FlaskClient, body: object):
    # Serialised by hand so that a None body is sent as the JSON literal null.
    return client.post("/predict", data=json.dumps(body), content_type="application/json")


def test_seed_request_answers_class_input_probabilities_version(client: FlaskClient) -> None:
    res = post(client, SEED_ROW)
    assert res.status_code == 200
    body = res.get_json()
    assert list(body) == ["Class", "Input", "Probabilities", "ModelVersion"]
    assert body["Class"] == "setosa"
    assert body["Input"] == SEED_ROW
    assert body["Probabilities"] == {"setosa": 1.0, "versicolor": 0.0, "virginica": 0.0}
    assert body["ModelVersion"] == client.get("/model").get_json()["version"]


def test_features_list_is_one_row(client: FlaskClient) -> None:
    body = post(client, {"features": [5.0, 3.2, 1.5, 0.3]}).get_json()
    assert body["Class"] == "setosa"
    assert body["Input"] == SEED_ROW


@pytest.mark.parametrize(
    "wrap",
    [lambda rows: rows, lambda rows: {"instances": rows}, lambda rows: {"instances": [list(r.values()) for r in rows]}],
    ids=["array", "instances", "instances-of-lists"],
)
def test_batches_keep_input_order(client: FlaskClient, wrap) -> None:
    rows = [VIRGINICA, SEED_ROW, VIRGINICA]
    res = post(client, wrap(rows))
    assert res.status_code == 200
    body = res.get_json()
    assert [p["Class"] for p in body["Predictions"]] == ["virginica", "setosa", "virginica"]
    assert all(abs(sum(p["Probabilities"].values()) - 1) < 1e-9 for p in body["Predictions"])
    assert body["ModelVersion"]


def error_of(res) -> dict:
    assert res.is_json, res.data[:200]
    body = res.get_json()
    assert isinstance(body["message"], str) and body["message"]
    assert b"Traceback" not in res.data
    return body


@pytest.mark.parametrize(
    ("body", "row", "field", "problem"),
    [
        ({k: v for k, v in SEED_ROW.items() if k != "petal_width"}, 0, "petal_width", errors.MISSING),
        ({**SEED_ROW, "colour": 1}, 0, "colour", errors.UNKNOWN),
        ({**SEED_ROW, "sepal_width": "wide"}, 0, "sepal_width", errors.NOT_A_NUMBER),
        ({**SEED_ROW, "sepal_width": True}, 0, "sepal_width", errors.BOOLEAN),
        ({**SEED_ROW, "sepal_width": None}, 0, "sepal_width", errors.NULL),
        ([SEED_ROW, {**SEED_ROW, "petal_length": None}], 1, "petal_length", errors.NULL),
        ({"instances": [SEED_ROW, [1, 2, "x", 4]]}, 1, "petal_length", errors.NOT_A_NUMBER),
        ({"features": [5.0, 3.2, 1.5]}, 0, None, None),
        ({"features": "5,3"}, None, "features", None),
        ({"instances": SEED_ROW}, None, "instances", None),
        ({"instances": [SEED_ROW], "extra": 1}, None, "extra", errors.UNKNOWN),
        ([SEED_ROW, 5], 1, None, "not an object"),
        ([], None, None, None),
        ({"instances": []}, None, None, None),
        ("setosa", None, None, None),
        (None, None, None, None),
    ],
)
def test_bad_input_is_400_naming_the_field(client: FlaskClient, body, row, field, problem) -> None:
    res = post(client, body)
    assert res.status_code == 400
    found = error_of(res)["errors"]
    assert any(
        (row is None or e["row"] == row)
        and (field is None or e["field"] == field)
        and (problem is None or e["problem"] == problem)
        for e in found
    ), found


@pytest.mark.parametrize(
    ("literal", "field"), [("NaN", "petal_width"), ("Infinity", "petal_width"), ("1e999", "petal_width")]
)
def test_non_finite_json_numbers_are_400(client: FlaskClient, literal: str, field: str) -> None:
    raw = json.dumps({k: v for k, v in SEED_ROW.items() if k != field})[:-1] + f', "{field}": {literal}}}'
    res = client.post("/predict", data=raw, content_type="application/json")
    assert res.status_code == 400
    assert error_of(res)["errors"] == [{"row": 0, "field": field, "problem": errors.NOT_FINITE}]


@pytest.mark.parametrize("raw", ["{bad json", "", '{"sepal_length": 5.0,', b"\xff\xfe"])
def test_malformed_json_is_400(client: FlaskClient, raw) -> None:
    res = client.post("/predict", data=raw, content_type="application/json")
    assert res.status_code == 400
    assert error_of(res)["message"] == "Malformed JSON"


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_non_json_body_is_415(client: FlaskClient, content_type) -> None:
    res = client.post("/predict", data=json.dumps(SEED_ROW), content_type=content_type)
    assert res.status_code == 415
    assert "application/json" in error_of(res)["message"]


def test_unknown_path_is_json_404(client: FlaskClient) -> None:
    res = client.get("/nowhere")
    assert res.status_code == 404
    assert "/nowhere" in error_of(res)["message"]


def test_wrong_method_is_405_with_allow(client: FlaskClient) -> None:
    res = client.get("/predict")
    assert res.status_code == 405
    assert "POST" in res.headers["Allow"]
    assert "POST" in error_of(res)["message"]


def test_body_over_the_limit_is_413(model_dir: Path) -> None:
    client = create_app({"MODEL_DIR": str(model_dir), "WARMUP": False, "MAX_CONTENT_LENGTH": 200}).test_client()
    res = post(client, [SEED_ROW] * 10)
    assert res.status_code == 413
    assert "200 bytes" in error_of(res)["message"]


def test_batch_over_the_row_limit_is_413(model_dir: Path) -> None:
    client = create_app({"MODEL_DIR": str(model_dir), "WARMUP": False, "MAX_BATCH_ROWS": 2}).test_client()
    assert post(client, [SEED_ROW] * 2).status_code == 200
    res = post(client, [SEED_ROW] * 3)
    assert res.status_code == 413
    assert "limit of 2" in error_of(res)["errors"][0]["problem"]


def test_health_answers_before_the_model_is_ready(client: FlaskClient, model_dir: Path) -> None:
    assert client.get("/health").get_json() == {"status": "ok"}
    assert not (model_dir / VERSIONS_DIR).exists()


def test_ready_trains_when_needed_and_reports_the_version(client: FlaskClient) -> None:
    res = client.get("/ready")
    assert res.status_code == 200
    assert res.get_json()["ModelVersion"] == client.get("/model").get_json()["version"]


def test_warmup_makes_the_service_ready_without_a_request(model_dir: Path) -> None:
    app = create_app({"MODEL_DIR": str(model_dir)})
    app.extensions["mldeploy"]._thread.join(timeout=60)
    assert app.extensions["mldeploy"].modeler.is_ready


def test_unready_model_gives_503_with_reason_and_retry_after(model_dir: Path) -> None:
    Modeler(model_dir).fit()
    version = next((model_dir / VERSIONS_DIR).iterdir())
    (version / ARTIFACT_FILE).write_bytes(b"truncated")
    client = create_app({"MODEL_DIR": str(model_dir), "WARMUP": False, "ON_CORRUPT": "fail"}).test_client()
    ready = client.get("/ready")
    assert ready.status_code == 503
    assert "sha256" in error_of(ready)["message"]
    assert ready.headers["Retry-After"] == "1"
    res = post(client, SEED_ROW)
    assert res.status_code == 503
    assert "sha256" in error_of(res)["message"]
    assert res.headers["Retry-After"] == "1"


def test_model_metadata(client: FlaskClient) -> None:
    meta = client.get("/model").get_json()
    assert meta["feature_names"] == list(SEED_ROW)
    assert meta["classes"] == ["setosa", "versicolor", "virginica"]
    assert len(meta["artifact"]["sha256"]) == 64


def test_environment_overrides_defaults_and_dict_overrides_both(monkeypatch, model_dir: Path) -> None:
    monkeypatch.setenv("MLDEPLOY_MAX_BATCH_ROWS", "7")
    monkeypatch.setenv("MLDEPLOY_PORT", "5123")
    app = create_app({"MODEL_DIR": str(model_dir), "WARMUP": False, "PORT": 6000})
    assert app.config["MAX_BATCH_ROWS"] == 7
    assert app.config["PORT"] == 6000
    assert app.config["HOST"] == DEFAULTS["HOST"]
    assert not app.debug


class BrokenModeler(Modeler):
    """Raises an unexpected exception, as a bug in our code would."""

    def infer(self, x):
        raise RuntimeError("secret internals")


def test_errors_are_json_outside_testing_mode(model_dir: Path) -> None:
    config = {"MODEL_DIR": str(model_dir), "WARMUP": False, "TESTING": False, "PROPAGATE_EXCEPTIONS": False}
    client = create_app(config).test_client()
    res = post(client, {**SEED_ROW, "petal_width": "wide"})
    assert res.status_code == 400
    assert error_of(res)["errors"] == [{"row": 0, "field": "petal_width", "problem": errors.NOT_A_NUMBER}]
    assert client.get("/nowhere").status_code == 404
    assert client.get("/predict").headers["Allow"]

    broken = create_app(config, modeler=BrokenModeler(model_dir)).test_client()
    res = post(broken, SEED_ROW)
    assert res.status_code == 500
    assert error_of(res) == {"message": "Internal server error"}
    assert b"secret" not in res.data


def test_injected_modeler_is_served(model_dir: Path) -> None:
    modeler = Modeler(model_dir, max_depth=1).fit()
    client = create_app({"WARMUP": False}, modeler=modeler).test_client()
    body = post(client, SEED_ROW).get_json()
    assert body["ModelVersion"] == modeler.version
    assert client.get("/model").get_json()["params"]["max_depth"] == 1


def test_admin_key_check(model_dir: Path) -> None:
    from flask_restful import Resource

    from mldeploy.http.auth import admin_required

    class Secret(Resource):
        @admin_required
        def post(self):
            return {"ok": True}

    for key, header, status in [
        # No admin key set: no credentials is still a 401 (RFC 9110); a key that cannot pass is 403.
        (None, None, 401),
        (None, "Bearer anything", 403),
        ("k1", None, 401),
        ("k1", "Bearer nope", 401),
        ("k1", "Bearer k1", 200),
    ]:
        app = create_app({"MODEL_DIR": str(model_dir), "WARMUP": False, "ADMIN_KEY": key})
        app.extensions["mldeploy_api"].add_resource(Secret, "/secret")
        res = app.test_client().post("/secret", headers={"Authorization": header} if header else {})
        assert res.status_code == status, res.get_json()
        if status == 401:
            assert res.headers["WWW-Authenticate"].startswith("Bearer")
        if status == 403:
            assert "MLDEPLOY_ADMIN_KEY" in res.get_json()["message"]
    app = create_app({"MODEL_DIR": str(model_dir), "WARMUP": False, "ADMIN_KEY": "k1"})
    app.extensions["mldeploy_api"].add_resource(Secret, "/secret")
    assert app.test_client().post("/secret?key=k1").status_code == 401  # never from the query string
