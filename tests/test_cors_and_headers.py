"""CORS (``MLDEPLOY_CORS_ORIGINS``), ``nosniff`` on every answer and the /docs policy, through the
test client (issue 15). The browser's view of the same is in tests/test_browser_origins.py."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mldeploy.docs.openapi import openapi_path
from mldeploy.http.app import create_app
from mldeploy.routes import ROUTES
from modeler.modeler import Modeler
from tests.support import SEED_ROW

PAGE = "http://127.0.0.1:8123"  # an origin the tests allow
OTHER = "http://127.0.0.1:8124"  # one they do not: another port is another origin
API_KEY, ADMIN_KEY = "page-key", "admin-key"
PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type"}
CREDENTIALS = "Access-Control-Allow-Credentials"


def make_app(model_dir: Path, **config: object) -> Flask:
    """The service on ``model_dir`` with keys on and ``config`` over it."""
    settings = {"MODEL_DIR": str(model_dir), "WARMUP": False, "API_KEYS": API_KEY, "ADMIN_KEY": ADMIN_KEY}
    return create_app({**settings, **config})


def preflight(client: FlaskClient, origin: str, path: str = "/predict"):
    """A browser's preflight for a POST with a key and a JSON body; it never carries the key."""
    return client.options(path, headers={"Origin": origin, **PREFLIGHT})


def call(client: FlaskClient, origin: str, body: object = SEED_ROW, key: str | None = API_KEY):
    headers = {"Origin": origin, **({"Authorization": f"Bearer {key}"} if key else {})}
    return client.post("/predict", json=body, headers=headers)


def test_off_by_default_no_origin_gets_cors_headers(model_dir: Path) -> None:
    client = make_app(model_dir).test_client()
    for res in (preflight(client, PAGE), call(client, PAGE)):
        assert not [h for h, _ in res.headers.items() if h.startswith("Access-Control-")], res.headers
    assert call(client, PAGE).status_code == 200  # the call itself works: only browsers refuse it


def test_a_listed_origin_gets_a_preflight_and_readable_answers(model_dir: Path) -> None:
    client = make_app(model_dir, CORS_ORIGINS=f"{PAGE}, https://app.example.com").test_client()

    res = preflight(client, PAGE)  # no key: browsers never send one with a preflight
    assert res.status_code == 200
    assert res.headers["Access-Control-Allow-Origin"] == PAGE
    assert "POST" in res.headers["Access-Control-Allow-Methods"]
    assert {"authorization", "content-type"} <= set(re.split(r",\s*", res.headers["Access-Control-Allow-Headers"]))
    assert int(res.headers["Access-Control-Max-Age"]) > 0

    ok = call(client, PAGE)
    assert ok.status_code == 200 and ok.get_json()["Class"] == "setosa"
    assert ok.headers["Access-Control-Allow-Origin"] == PAGE
    assert "X-Request-ID" in ok.headers["Access-Control-Expose-Headers"]
    assert "Origin" in ok.headers.get_all("Vary")
    # Errors are readable too: a page can show the problems of a 400 and the reason of a 401.
    for res, status in ((call(client, PAGE, {"petal_width": 1}), 400), (call(client, PAGE, key=None), 401)):
        assert res.status_code == status and res.headers["Access-Control-Allow-Origin"] == PAGE
    for res in (preflight(client, PAGE), ok):
        assert CREDENTIALS not in res.headers


def test_an_unlisted_origin_gets_nothing_to_read(model_dir: Path) -> None:
    client = make_app(model_dir, CORS_ORIGINS=PAGE).test_client()
    for origin in (OTHER, "null", PAGE + ".evil.example", "http://127.0.0.1"):
        for res in (preflight(client, origin), call(client, origin)):
            assert "Access-Control-Allow-Origin" not in res.headers, origin
    # The answer depends on Origin even with one origin listed: caches must keep them apart.
    assert "Origin" in call(client, OTHER).headers.get_all("Vary")


def test_wildcard_allows_any_origin_and_never_credentials(model_dir: Path) -> None:
    client = make_app(model_dir, CORS_ORIGINS="*").test_client()
    for origin in (PAGE, OTHER):
        for res in (preflight(client, origin), call(client, origin), call(client, origin, key=None)):
            assert res.headers["Access-Control-Allow-Origin"] == "*"
            assert CREDENTIALS not in res.headers


def test_preflights_need_no_key_and_are_not_rate_limited(model_dir: Path) -> None:
    client = make_app(model_dir, CORS_ORIGINS=PAGE, RATE_LIMIT="2/minute").test_client()
    for _ in range(5):
        assert preflight(client, PAGE).status_code == 200
    assert [call(client, PAGE).status_code for _ in range(3)] == [200, 200, 429]
    # An OPTIONS passes without a key, but the call it announces still needs one.
    assert call(client, PAGE, key="wrong").status_code in (401, 429)


@pytest.mark.parametrize(
    "value", ["http://a.example/path", "null", "*,http://a.example", "a.example", "ftp://a.example", "http://a b"]
)
def test_a_setting_that_is_not_a_list_of_origins_stops_the_start(model_dir: Path, value: str) -> None:
    with pytest.raises(ValueError, match="CORS_ORIGINS"):
        make_app(model_dir, CORS_ORIGINS=value)


def test_the_environment_variable_is_read_as_text(model_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLDEPLOY_CORS_ORIGINS", f"{PAGE},http://[::1]:3000")
    client = create_app({"MODEL_DIR": str(model_dir), "WARMUP": False}).test_client()
    assert call(client, PAGE, key=None).headers["Access-Control-Allow-Origin"] == PAGE
    assert call(client, "http://[::1]:3000", key=None).headers["Access-Control-Allow-Origin"] == "http://[::1]:3000"
    # "[::1]" is matched as text, not as a regular expression's character class.
    assert "Access-Control-Allow-Origin" not in call(client, "http://1:3000", key=None).headers


# --- headers on every answer -------------------------------------------------------------------


class Broken(Modeler):
    """Raises what a bug of ours would, for a 500."""

    def infer(self, x):
        raise RuntimeError("bug")


def every_answer(app: Flask, version: str) -> list:
    """One answer (status and headers, the body closed) per documented operation, plus each
    error status and the docs' files."""
    client = app.test_client()
    auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
    answers = []
    for route in ROUTES:
        path, methods = openapi_path(route.path), route.operations
        url = path.replace("{model_name}", "iris").replace("{model_version}", version).replace("{path}", "index.css")
        for method in methods:
            answers.append(client.open(url, method=method.upper(), headers=auth, json={} if method == "post" else None))
    answers += [
        client.get("/nowhere"),  # 404
        client.get("/predict", headers=auth),  # 405
        client.post("/predict", data="x", content_type="text/plain", headers=auth),  # 415
        client.post("/predict", data=b"[" * 100, content_type="application/json", headers=auth),  # 400
        client.post("/predict", json=SEED_ROW),  # 401
        client.post("/predict", json=[SEED_ROW] * 20_000, headers=auth),  # 413
        client.options("/predict"),
        client.head("/health"),
        client.get("/docs/swagger-ui-bundle.js"),
    ]
    for res in answers:
        res.close()  # files are streamed from disk
    return answers


def test_every_answer_carries_nosniff(models: Path) -> None:
    app = make_app(models, TESTING=False, CORS_ORIGINS=PAGE)
    version = Modeler(models).ensure_ready().version
    answers = every_answer(app, version)
    statuses = {res.status_code for res in answers}
    assert {200, 201, 400, 401, 404, 405, 413, 415} <= statuses, statuses
    for res in answers:
        assert res.headers.get("X-Content-Type-Options") == "nosniff", (res.status_code, res.headers)
    broken = make_app(models, TESTING=False, PROPAGATE_EXCEPTIONS=False)
    broken_client = create_app(broken.config, modeler=Broken(models)).test_client()
    res = broken_client.post("/predict", json=SEED_ROW, headers={"Authorization": f"Bearer {API_KEY}"})
    assert res.status_code == 500 and res.headers["X-Content-Type-Options"] == "nosniff"
    limited = make_app(models, RATE_LIMIT="1/minute").test_client()
    res = [limited.post("/predict", json=SEED_ROW, headers={"Authorization": f"Bearer {API_KEY}"}) for _ in range(2)]
    assert res[1].status_code == 429 and res[1].headers["X-Content-Type-Options"] == "nosniff"
    no_admin = make_app(models, ADMIN_KEY=None).test_client()
    res = no_admin.post("/model/train", headers={"Authorization": f"Bearer {API_KEY}"})
    assert res.status_code == 403 and res.headers["X-Content-Type-Options"] == "nosniff"


def sha256_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


def test_docs_have_a_strict_policy_that_allows_their_inline_script_only(model_dir: Path) -> None:
    client = make_app(model_dir).test_client()
    for page in ("/docs", "/docs/"):
        res = client.get(page)
        policy = dict(d.strip().split(" ", 1) for d in res.headers["Content-Security-Policy"].split(";"))
        scripts = re.findall(r"<script>(.*?)</script>", res.get_data(as_text=True), re.DOTALL)
        assert scripts, "flask-swagger-ui's page has no inline script any more?"
        assert policy["script-src"].split() == ["'self'", *map(sha256_source, scripts)]
        assert policy["default-src"] == "'none'" and policy["connect-src"] == "'self'"
        assert policy["frame-ancestors"] == "'none'" and "unsafe" not in res.headers["Content-Security-Policy"]
    with client.get("/docs/swagger-ui.css") as asset:
        assert "'sha256-" not in asset.headers["Content-Security-Policy"]
    assert "Content-Security-Policy" not in client.get("/health").headers  # JSON answers: no page to guard
