"""The route table (mldeploy/routes.py) and what it drives: who may call each route, the statuses
and body shapes the OpenAPI document lists, the metrics' endpoint label; one readiness answer
behind every readiness probe; one version for the package, the document and /v2."""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest
from flask import Flask
from flask.testing import FlaskClient

import mldeploy
from mldeploy.docs.openapi import openapi_path
from mldeploy.http.app import EXTENSION, create_app
from mldeploy.http.auth import Access
from mldeploy.routes import ROUTES
from tests.support import SEED_ROW, metric_value

API_KEY, ADMIN_KEY = "route-api-key", "route-admin-key"
FEATURES = list(SEED_ROW)
VALUES = list(SEED_ROW.values())
# Every body shape /predict accepts (README, "POST /predict"), each answered 200.
PREDICT_BODIES = {
    "one row, named features": SEED_ROW,
    "one row, numbers in feature order": {"features": VALUES},
    "a batch": [SEED_ROW, SEED_ROW],
    "a batch, KServe V1 style": {"instances": [SEED_ROW, VALUES]},
    "a batch, column-wise": {"columns": FEATURES[::-1], "data": [VALUES[::-1], VALUES[::-1]]},
}


@pytest.fixture(scope="module")
def keyed(models: Path) -> Flask:
    """Keys on, model ready, real error handling."""
    app = create_app(
        {"MODEL_DIR": str(models), "WARMUP": False, "API_KEYS": API_KEY, "ADMIN_KEY": ADMIN_KEY, "TESTING": False}
    )
    assert app.extensions[EXTENSION].warm_up()
    return app


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def concrete(rule: str, app: Flask) -> str:
    """A URL for ``rule``: the served model's name and version, an asset of Swagger UI."""
    model = app.extensions[EXTENSION].modeler.ensure_ready()
    values = {"model_name": app.config["MODEL_NAME"], "model_version": model.version, "path": "swagger-ui.css"}
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", lambda m: values[m.group(1)], rule)


def call(client: FlaskClient, method: str, url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], str]:
    """Status, headers and the start of the body; a JSON ``{}`` body for every method (a bad row
    for /predict, an empty request for infer: both 400)."""
    with client.open(url, method=method.upper(), json={}, headers=headers) as res:
        return res.status_code, dict(res.headers), res.get_data(as_text=True)[:300]


ROUTE_CASES = [
    pytest.param(route, rule, method, id=f"{method.upper()} {rule}")
    for route in ROUTES
    for rule in route.rules
    for method in route.operations
]


@pytest.mark.parametrize(("route", "rule", "method"), ROUTE_CASES)
def test_who_may_call_a_route_is_the_tables_say(keyed: Flask, route, rule: str, method: str) -> None:
    client = keyed.test_client()
    url = concrete(rule, keyed)
    status, headers, body = call(client, method, url, {})
    if route.access is Access.OPEN:
        assert status != 401, body
    else:
        assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer"), body
    status, _, body = call(client, method, url, bearer(API_KEY))
    assert (status == 401) is (route.access is Access.ADMIN), body
    assert call(client, method, url, bearer(ADMIN_KEY))[0] != 401


@pytest.mark.parametrize(("route", "rule", "method"), ROUTE_CASES)
def test_every_route_answers_only_statuses_its_operation_lists(keyed: Flask, route, rule: str, method: str) -> None:
    client = keyed.test_client()
    spec = client.get("/openapi.json").get_json()
    listed = spec["paths"][openapi_path(route.path)][method]["responses"]
    url = concrete(rule, keyed)
    for headers in ({}, bearer(API_KEY), bearer(ADMIN_KEY)):
        status, _, body = call(client, method, url, headers)
        assert str(status) in listed, (status, body)


@pytest.mark.parametrize("shape", PREDICT_BODIES)
def test_every_body_shape_predict_takes_is_in_the_document(keyed: Flask, shape: str) -> None:
    client = keyed.test_client()
    spec = client.get("/openapi.json").get_json()
    body_schema = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    # Validated against the document itself, so its $refs resolve.
    jsonschema.Draft202012Validator({**body_schema, "components": spec["components"]}).validate(PREDICT_BODIES[shape])
    assert client.post("/predict", json=PREDICT_BODIES[shape], headers=bearer(API_KEY)).status_code == 200


def test_one_readiness_answer_behind_every_probe(model_dir: Path) -> None:
    app = create_app({"MODEL_DIR": str(model_dir), "WARMUP": False, "LAZY_TRAIN": False, "RETRY_AFTER": 7})
    client = app.test_client()
    probes = [client.get(url) for url in ("/ready", "/v2/health/ready", "/v2/models/iris/ready")]
    assert [res.status_code for res in probes] == [503, 503, 503]
    assert {res.headers.get("Retry-After") for res in probes} == {"7"}
    reasons = [res.get_json().get("message") or res.get_json()["error"] for res in probes]
    assert len(set(reasons)) == 1 and reasons[0].startswith("Model not ready: "), reasons


def test_one_readiness_answer_when_ready(keyed: Flask) -> None:
    client = keyed.test_client()
    version = keyed.extensions[EXTENSION].modeler.version
    assert client.get("/ready").get_json() == {"status": "ready", "ModelVersion": version}
    assert client.get("/v2/health/ready").get_json() == {"ready": True}
    ready = client.get(f"/v2/models/iris/versions/{version}/ready", headers=bearer(API_KEY))
    assert ready.status_code == 200 and ready.get_json() == {"name": "iris", "ready": True}


def requests_counted(client: FlaskClient, **labels: str) -> float:
    return metric_value(client.get("/metrics").get_data(as_text=True), "mldeploy_http_requests_total", **labels)


def test_a_wrong_method_is_counted_under_its_route(client: FlaskClient) -> None:
    wrong = {"method": "GET", "endpoint": "/predict", "status": "405"}
    unmatched = {"endpoint": "(unmatched)", "status": "405"}
    before, before_unmatched = requests_counted(client, **wrong), requests_counted(client, **unmatched)
    assert client.get("/predict").status_code == 405
    assert requests_counted(client, **wrong) - before == 1
    # "(unmatched)" stays for paths no route has.
    assert requests_counted(client, **unmatched) == before_unmatched


def test_a_trailing_slash_alias_is_counted_as_its_route(client: FlaskClient) -> None:
    live = {"method": "GET", "endpoint": "/v2/health/live", "status": "200"}
    before = requests_counted(client, **live)
    assert client.get("/v2/health/live/").status_code == 200
    assert requests_counted(client, **live) - before == 1
    assert requests_counted(client, endpoint="/v2/health/live/") == 0


def test_one_version_for_the_package_the_document_and_v2(client: FlaskClient) -> None:
    assert client.get("/openapi.json").get_json()["info"]["version"] == mldeploy.__version__
    assert client.get("/v2").get_json()["version"] == mldeploy.__version__


def test_admin_statuses_follow_the_configuration(model_dir: Path) -> None:
    def train_statuses(**config: object) -> set[str]:
        app = create_app({"MODEL_DIR": str(model_dir), "WARMUP": False, **config})
        return set(app.test_client().get("/openapi.json").get_json()["paths"]["/model/train"]["post"]["responses"])

    # 403 only while no admin key is set (a key was sent, none can pass); 401 always.
    assert {"401", "403"} <= train_statuses()
    with_key = train_statuses(ADMIN_KEY="k")
    assert "401" in with_key and "403" not in with_key
    client = create_app({"MODEL_DIR": str(model_dir), "WARMUP": False}).test_client()
    missing = client.post("/model/train")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    assert "set MLDEPLOY_ADMIN_KEY" in missing.get_json()["message"]
    assert client.post("/model/train", headers=bearer("any")).status_code == 403
