"""Deeply nested JSON (issue 15): every route that reads a body answers 400 naming the nesting,
quickly, through the test client and from a live ``python app.py`` outside testing mode."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest
import requests
from flask import Flask, request
from flask.testing import FlaskClient

from mldeploy.http import json_limits
from mldeploy.http.app import create_app
from mldeploy.http.json_limits import MAX_DEPTH, TooDeep
from tests.support import SEED_ROW, clean_env, copy_project, free_port, running

ADMIN = "admin-key"
AUTH = {"Authorization": f"Bearer {ADMIN}"}
LEVELS = (1_000, 10_000, 100_000)
DEEP = "nested deeper than"
# The routes that read a body, with the error shape each answers in.
BODY_ROUTES = ("/predict", "/v2/models/iris/infer", "/model/train", "/model/activate")


def array(levels: int) -> bytes:
    """``[[[...]]]``, ``levels`` deep."""
    return b"[" * levels + b"]" * levels


def as_field(levels: int) -> bytes:
    """The seed row with ``{"a": {"a": ... 1}}``, ``levels`` deep, as its first field's value."""
    rest = json.dumps(SEED_ROW)[1:].split(",", 1)[1].encode()  # the other three fields
    return b'{"sepal_length": ' + b'{"a": ' * levels + b"1" + b"}" * levels + b"," + rest


def depth(value: object) -> int:
    """Nesting of a parsed value (recursive: only for the shallow values the tests build)."""
    if isinstance(value, dict):
        value = list(value.values())
    return 1 + max(map(depth, value), default=0) if isinstance(value, list) else 0


def nested(levels: int, kind: str = "array") -> object:
    """A value of ``levels`` nested arrays (or objects) around 1."""
    value: object = 1
    for _ in range(levels):
        value = [value] if kind == "array" else {"a": value}
    return value


def problem_of(path: str, res) -> str:
    """The problem text of an error answer, in /predict's or the Open Inference Protocol's shape."""
    body = res.get_json() if hasattr(res, "get_json") else res.json()
    if path.startswith("/v2/"):
        assert set(body) == {"error"}, body
        return body["error"]
    assert body["message"] == "Malformed JSON", body
    [error] = body["errors"]
    assert (error["row"], error["field"]) == (None, None), error
    return error["problem"]


@pytest.fixture
def admin_app(model_dir: Path) -> Flask:
    """The service in testing mode (an exception inside a route reaches the test) with admin routes on."""
    return create_app({"TESTING": True, "MODEL_DIR": str(model_dir), "WARMUP": False, "ADMIN_KEY": ADMIN})


@pytest.fixture
def admin_client(admin_app: Flask) -> FlaskClient:
    """A test client for :func:`admin_app`."""
    return admin_app.test_client()


# --- the parser itself -------------------------------------------------------------------------


def test_orjson_limit_is_the_one_the_padding_assumes() -> None:
    # The pinned orjson reads 1024 levels; json_limits finds this by trying, this pins it.
    assert json_limits.ORJSON_DEPTH == 1024
    orjson.loads(array(1024))
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(array(1025))


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize("rows", [0, 2_000], ids=["small", "padded"])
def test_max_depth_reads_and_one_more_does_not(kind: str, rows: int) -> None:
    # A small body at MAX_DEPTH is read after counting its brackets; one level more, or a large
    # body, is parsed inside the padding arrays: both ways stop at MAX_DEPTH.
    for levels in (MAX_DEPTH, MAX_DEPTH + 1):
        value = [nested(levels - 1, kind), *[SEED_ROW] * rows] if rows else nested(levels, kind)
        body = orjson.dumps(value)
        if levels <= MAX_DEPTH:
            assert json_limits.loads(body) == value
            assert depth(value) == MAX_DEPTH
        else:
            with pytest.raises(TooDeep, match=f"{DEEP} {MAX_DEPTH} levels"):
                json_limits.loads(body)


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 900, *LEVELS])
def test_the_stdlib_fallback_is_bounded_too(levels: int) -> None:
    # A NaN literal sends the body to the stdlib parser, which read up to ~950 levels (then
    # RecursionError): neither may pass a value deeper than MAX_DEPTH.
    body = b'{"x": NaN, "y": ' + array(levels) + b"}"
    with pytest.raises(TooDeep):
        json_limits.loads(body)
    value = json_limits.loads(b'{"x": NaN, "y": ' + array(MAX_DEPTH - 1) + b"}")
    assert depth(value) == MAX_DEPTH


def test_a_body_closing_the_padding_itself_is_still_malformed() -> None:
    # Inside the padding arrays, "A],[B" would parse as two values: it must stay malformed JSON.
    rows = orjson.dumps([SEED_ROW] * 300)
    body = rows + b"],[" + rows
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)
    with pytest.raises(ValueError, match=r"Expecting|Extra data") as caught:
        json_limits.loads(body)
    assert not isinstance(caught.value, TooDeep)


@pytest.mark.parametrize(
    "raw", [json.dumps(SEED_ROW).encode("utf-16"), b"\xef\xbb\xbf" + orjson.dumps([SEED_ROW] * 300)]
)
def test_what_only_the_stdlib_reads_still_reads(raw: bytes) -> None:
    assert json_limits.loads(raw) in (SEED_ROW, [SEED_ROW] * 300)


# --- every route, through the test client ------------------------------------------------------


def body_routes(app: Flask, version: str) -> Iterator[str]:
    """Every URL of the app that takes a POST, with its path arguments filled in."""
    values = {"model_name": "iris", "model_version": version}
    for rule in app.url_map.iter_rules():
        if "POST" in (rule.methods or ()):
            missing = set(rule.arguments) - values.keys()
            assert not missing, f"{rule.rule}: give the test a value for {missing}"
            yield rule.build({k: values[k] for k in rule.arguments})[1]


def test_every_route_that_takes_a_body_refuses_deep_nesting(admin_app: Flask, admin_client: FlaskClient) -> None:
    # Routes a later issue adds are in the route table too: they are checked without anyone
    # remembering to.
    version = admin_app.extensions["mldeploy"].modeler.fit().version
    urls = sorted(body_routes(admin_app, version))
    assert {"/predict", "/model/train", "/model/activate", "/v2/models/iris/infer"} <= set(urls), urls
    for url in urls:
        res = admin_client.post(url, data=array(10_000), content_type="application/json", headers=AUTH)
        assert res.status_code == 400, (url, res.get_json())
        assert DEEP in problem_of(url, res)


@pytest.mark.parametrize("levels", LEVELS)
@pytest.mark.parametrize("shape", [array, as_field], ids=["array", "field"])
@pytest.mark.parametrize("path", BODY_ROUTES)
def test_deep_bodies_are_400_naming_the_nesting(
    admin_client: FlaskClient, trained, path: str, shape: Callable[[int], bytes], levels: int
) -> None:
    body = shape(levels)
    start = time.perf_counter()
    res = admin_client.post(path, data=body, content_type="application/json", headers=AUTH)
    elapsed = time.perf_counter() - start
    print(
        f"{path} {shape.__name__} {levels:,} levels: {res.status_code} in {elapsed * 1000:.1f} ms: {res.get_data()!r}"
    )
    assert res.status_code == 400
    assert f"{DEEP} {MAX_DEPTH} levels" in problem_of(path, res)


def test_request_get_json_is_bounded_too(admin_app: Flask) -> None:
    # A later route reading its body with Flask's own request.get_json() gets a 400 rather than
    # a 500 (Flask words it "could not understand" outside debug mode; payload.read_json names it).
    admin_app.add_url_rule("/echo", "echo", lambda: {"got": request.get_json()}, methods=["POST"])
    client = admin_app.test_client()
    assert client.post("/echo", json={"a": [1]}).get_json() == {"got": {"a": [1]}}
    res = client.post("/echo", data=array(100_000), content_type="application/json", headers=AUTH)
    assert res.status_code == 400
    assert "message" in res.get_json()


# What reads a value inside a body that parses: each slot gets a value that brings the body to
# exactly MAX_DEPTH levels, the deepest accepted, as an array and as an object.
SLOT = "@slot@"
WALKED = [
    ("/predict", {**SEED_ROW, "sepal_length": SLOT}),
    ("/predict?explain=true", [{**SEED_ROW, "petal_width": SLOT}]),
    ("/predict", {"instances": [SLOT]}),
    ("/predict", {"features": SLOT}),
    ("/predict", {"columns": SLOT, "data": [[1, 2, 3, 4]]}),
    ("/predict", {"columns": list(SEED_ROW), "data": [SLOT]}),
    ("/v2/models/iris/infer", {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": [SLOT]}]}),
    ("/v2/models/iris/infer", {"inputs": [{"name": "x", "datatype": SLOT, "shape": [1, 4], "data": [1, 2, 3, 4]}]}),
    ("/v2/models/iris/infer", {"inputs": [{"name": "x", "datatype": "FP64", "shape": SLOT, "data": [1, 2, 3, 4]}]}),
    (
        "/v2/models/iris/infer",
        {
            "inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": [1, 2, 3, 4]}],
            "outputs": [{"name": SLOT}],
        },
    ),
    (
        "/v2/models/iris/infer",
        {"id": SLOT, "inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": [1, 2, 3, 4]}]},
    ),
    ("/model/train", {"params": {"max_depth": SLOT}}),
    ("/model/train", {"params": {"criterion": SLOT}}),
    ("/model/train", {"params": {"class_weight": SLOT}}),
    ("/model/train", {"params": {"class_weight": {"setosa": SLOT, "versicolor": 1, "virginica": 1}}}),
    ("/model/train", {"params": {"monotonic_cst": SLOT}}),
    ("/model/train", {"params": SLOT}),
    ("/model/activate", {"version": SLOT}),
]


def at_max_depth(template: object, kind: str) -> bytes:
    """``template`` with its slot filled so that the whole body is MAX_DEPTH levels deep."""
    text = json.dumps(template)
    for levels in range(MAX_DEPTH, -1, -1):
        body = text.replace(json.dumps(SLOT), json.dumps(nested(levels, kind)))
        if depth(json.loads(body)) == MAX_DEPTH:
            return body.encode()
    raise AssertionError(f"no fill brings {text} to {MAX_DEPTH} levels")


@pytest.mark.parametrize("kind", ["array", "object"])
@pytest.mark.parametrize(("path", "template"), WALKED, ids=[f"{p}:{json.dumps(t)[:60]}" for p, t in WALKED])
def test_values_as_deep_as_accepted_never_give_500(admin_client: FlaskClient, trained, path, template, kind) -> None:
    # Validation, error messages (json.dumps, repr) and scikit-learn's parameter checks walk these
    # values; in testing mode an exception they raise would fail this test rather than answer 500.
    res = admin_client.post(path, data=at_max_depth(template, kind), content_type="application/json", headers=AUTH)
    assert res.status_code in (200, 400), (res.status_code, res.get_data()[:300])


@pytest.mark.parametrize(
    "params",
    [
        {"class_weight": {"setosa": {"a": 1}, "versicolor": 1, "virginica": 1}},
        {"monotonic_cst": {}},
        {"monotonic_cst": {"a": {"a": 1}}},
        {"monotonic_cst": [None, None, None, None]},
    ],
)
def test_tree_parameters_scikit_learn_cannot_use_are_400(admin_client: FlaskClient, params: dict) -> None:
    # They pass scikit-learn's constraint check (a dict is a dict) and fail inside fit with
    # TypeError or IndexError, which once escaped as 500.
    res = admin_client.post("/model/train", json={"params": params}, headers=AUTH)
    assert res.status_code == 400, res.get_json()
    assert res.get_json()["message"].startswith("training failed")


# --- a live server, outside testing mode -------------------------------------------------------


@pytest.fixture(scope="module")
def live_admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``python app.py`` (TESTING off, as in production) with the admin routes on; yields its
    base URL and log file."""
    project = copy_project(tmp_path_factory.mktemp("clone"))
    port, log = free_port(), project / "server.log"
    env = clean_env(MLDEPLOY_ADMIN_KEY=ADMIN)
    with running(["app.py", "--port", str(port)], project, port, env=env, log=log) as (base, _):
        requests.post(base + "/predict", json=SEED_ROW, timeout=60).raise_for_status()  # trained
        yield base, log


@pytest.mark.parametrize("path", BODY_ROUTES)
def test_live_server_answers_400_to_deep_bodies(live_admin: tuple[str, Path], path: str) -> None:
    base, log = live_admin
    seen = {}
    with requests.Session() as session:
        for levels in LEVELS:
            for shape in (array, as_field):
                start = time.perf_counter()
                res = session.post(
                    base + path, data=shape(levels), headers={**AUTH, "Content-Type": "application/json"}, timeout=30
                )
                elapsed = time.perf_counter() - start
                print(f"live {path} {shape.__name__} {levels:,} levels: {res.status_code} in {elapsed * 1000:.1f} ms")
                seen[shape.__name__, levels] = (
                    res.status_code,
                    problem_of(path, res) if res.status_code == 400 else res.text,
                )
        assert session.post(base + "/predict", json=SEED_ROW, timeout=30).status_code == 200  # nothing else affected
    # Every outcome first, then the verdict: a 500 and a wrong 400 both show.
    assert all(status == 400 and f"{DEEP} {MAX_DEPTH} levels" in text for status, text in seen.values()), seen
    text = log.read_text()
    assert "Traceback" not in text and "RecursionError" not in text
