"""API keys, the admin key and the rate limit, through the test client."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask_restful import Resource

from mldeploy.http.app import API_EXTENSION, create_app
from mldeploy.http.auth import admin_required
from mldeploy.settings import load_settings
from tests.support import SEED_ROW

KEYS = "first-key, second-key"
ADMIN = "admin-key"


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


class Retrain(Resource):
    """A stand-in admin endpoint (the real ones come with model versioning)."""

    @admin_required
    def post(self) -> dict:
        return {"done": True}


def make_app(model_dir: Path, **config: object) -> Flask:
    app = create_app({"MODEL_DIR": str(model_dir), "WARMUP": False, "TESTING": True, **config})
    app.extensions[API_EXTENSION].add_resource(Retrain, "/model/retrain-for-test")
    return app


@pytest.fixture
def keyed(model_dir: Path) -> Flask:
    return make_app(model_dir, API_KEYS=KEYS, ADMIN_KEY=ADMIN)


@pytest.mark.parametrize("key", ["first-key", "second-key", ADMIN])
def test_any_configured_key_opens_predict_and_model(keyed: Flask, key: str) -> None:
    client = keyed.test_client()
    assert client.post("/predict", json=SEED_ROW, headers=bearer(key)).status_code == 200
    assert client.get("/model", headers=bearer(key)).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, bearer("wrong"), bearer(""), {"Authorization": "Basic Zmlyc3Qta2V5"}, {"Authorization": "first-key"}],
    ids=["none", "wrong", "empty", "basic", "no-scheme"],
)
def test_no_valid_key_is_401_with_www_authenticate(keyed: Flask, headers: dict) -> None:
    for res in (
        keyed.test_client().post("/predict", json=SEED_ROW, headers=headers),
        keyed.test_client().get("/model"),
    ):
        assert res.status_code == 401
        assert res.headers["WWW-Authenticate"] == 'Bearer realm="mldeploy"'
        assert res.get_json() == {"message": "Send Authorization: Bearer <key> with one of the MLDEPLOY_API_KEYS"}


def test_a_key_in_the_query_string_is_not_accepted(keyed: Flask) -> None:
    client = keyed.test_client()
    for name in ("api_key", "key", "token", "access_token"):
        assert client.get(f"/model?{name}=first-key").status_code == 401


def test_probes_metrics_and_docs_stay_open(keyed: Flask) -> None:
    client = keyed.test_client()
    for path in ("/health", "/ready", "/metrics", "/openapi.json", "/docs", "/docs/", "/docs/swagger-ui.css"):
        with client.get(path) as res:
            assert res.status_code in (200, 503), path  # /ready is 503 until warm-up


def test_unknown_paths_and_wrong_methods_keep_their_status(keyed: Flask) -> None:
    client = keyed.test_client()
    assert client.get("/nowhere").status_code == 404
    wrong = client.get("/predict")
    assert wrong.status_code == 405 and "POST" in wrong.headers["Allow"]


def test_without_keys_everything_is_open(model_dir: Path) -> None:
    client = make_app(model_dir).test_client()
    assert client.post("/predict", json=SEED_ROW).status_code == 200


def test_admin_endpoints_are_403_until_an_admin_key_is_set(model_dir: Path) -> None:
    res = make_app(model_dir).test_client().post("/model/retrain-for-test", headers=bearer("anything"))
    assert res.status_code == 403
    assert "set MLDEPLOY_ADMIN_KEY to enable them" in res.get_json()["message"]


def test_admin_endpoints_need_the_admin_key_not_an_api_key(keyed: Flask) -> None:
    client = keyed.test_client()
    # An API key gets past the API-key check, then the admin check refuses it.
    res = client.post("/model/retrain-for-test", headers=bearer("first-key"))
    assert res.status_code == 401 and res.headers["WWW-Authenticate"].startswith("Bearer")
    assert client.post("/model/retrain-for-test?key=admin-key").status_code == 401
    assert client.post("/model/retrain-for-test", headers=bearer(ADMIN)).get_json() == {"done": True}


def test_keys_that_look_like_json_stay_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLDEPLOY_API_KEYS", "12345")
    monkeypatch.setenv("MLDEPLOY_ADMIN_KEY", "1e5")
    config = load_settings()
    assert (config.api_keys, config.admin_key) == (("12345",), "1e5")


def test_over_the_rate_limit_is_429_with_retry_after(model_dir: Path) -> None:
    client = make_app(model_dir, RATE_LIMIT="3/minute").test_client()
    statuses = [client.post("/predict", json=SEED_ROW).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    res = client.post("/predict", json=SEED_ROW)
    assert res.status_code == 429
    assert 0 < int(res.headers["Retry-After"]) <= 60
    assert res.get_json() == {
        "message": "Rate limit exceeded (3 per 1 minute, MLDEPLOY_RATE_LIMIT): retry after Retry-After seconds"
    }
    # Probes are never limited: an orchestrator must always get its answer.
    assert all(client.get("/health").status_code == 200 for _ in range(10))


def test_rate_limit_counts_each_key_apart(model_dir: Path) -> None:
    client = make_app(model_dir, RATE_LIMIT="2/minute", API_KEYS=KEYS).test_client()
    first = [client.post("/predict", json=SEED_ROW, headers=bearer("first-key")).status_code for _ in range(3)]
    second = [client.post("/predict", json=SEED_ROW, headers=bearer("second-key")).status_code for _ in range(3)]
    assert first == second == [200, 200, 429]
