"""Open Inference Protocol (KServe V2) REST: a real V2 client (tritonclient) against a live
``python app.py``, then the protocol's error shape through the test client.

tritonclient 2.73 (with gevent 26.9, geventhttpclient 2.6) imports without a warning on Python
3.11 and numpy 2.4.6, so nothing is filtered. Should one appear, filter exactly that one in this
module (``pytestmark = pytest.mark.filterwarnings(...)``), never in pyproject.toml.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from flask.testing import FlaskClient
from tritonclient.utils import InferenceServerException

from mldeploy.api.v2.protocol import HEADER_LENGTH
from mldeploy.api.v2.typed_body import CheckedNumbers, typed_body
from mldeploy.http.app import create_app
from modeler.data import IRIS_FEATURES
from modeler.schema import Field, Schema
from tests.support import copy_project, free_port, running, wait_ready

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
ROWS = np.array([[5.0, 3.2, 1.5, 0.3], [6.5, 3.0, 5.5, 2.0], [5.9, 3.0, 4.2, 1.5]])
LABELS = ["setosa", "virginica", "versicolor"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python app.py`` in a fresh copy of the code; yields ``host:port`` as V2 clients take it."""
    project = copy_project(tmp_path_factory.mktemp("v2"))
    port = free_port()
    with running(["app.py", "--port", str(port)], project, port, log=project / "server.log") as (base, _):
        wait_ready(base + "/v2/health/ready")  # the first start trains a model in the background
        yield f"127.0.0.1:{port}"


@pytest.fixture
def triton(server: str) -> Iterator[httpclient.InferenceServerClient]:
    client = httpclient.InferenceServerClient(url=server, network_timeout=30.0)
    yield client
    client.close()


def test_health_and_metadata(triton: httpclient.InferenceServerClient) -> None:
    assert triton.is_server_live()
    assert triton.is_server_ready()
    assert triton.is_model_ready("iris")
    assert not triton.is_model_ready("no-such-model")
    assert triton.get_server_metadata()["name"] == "mldeploy"
    metadata = triton.get_model_metadata("iris")
    assert [i["name"] for i in metadata["inputs"]] == FEATURES
    assert metadata["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP64", "shape": [-1, 3]},
    ]
    version = metadata["versions"][0]
    assert triton.is_model_ready("iris", model_version=version)
    assert triton.get_model_metadata("iris", model_version=version)["versions"] == [version]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("datatype", ["FP32", "FP64"])
def test_one_tensor_in_feature_order(triton: httpclient.InferenceServerClient, binary: bool, datatype: str) -> None:
    tensor = httpclient.InferInput("input-0", list(ROWS.shape), datatype)
    tensor.set_data_from_numpy(ROWS.astype(np.float32 if datatype == "FP32" else np.float64), binary_data=binary)
    result = triton.infer("iris", [tensor])
    # The client asks for binary outputs by default: BYTES come back as bytes, as from Triton.
    assert result.as_numpy("label").tolist() == [label.encode() for label in LABELS]
    probabilities = result.as_numpy("probabilities")
    assert probabilities.shape == (3, 3) and probabilities.dtype == np.float64
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0)
    assert result.get_response()["model_version"] == triton.get_model_metadata("iris")["versions"][0]


def test_one_named_input_per_feature_and_chosen_outputs(triton: httpclient.InferenceServerClient) -> None:
    inputs = []
    for j, name in enumerate(reversed(FEATURES)):  # any order: the names say which is which
        tensor = httpclient.InferInput(name, [len(ROWS)], "FP64")
        tensor.set_data_from_numpy(ROWS[:, len(FEATURES) - 1 - j].copy())
        inputs.append(tensor)
    outputs = [httpclient.InferRequestedOutput("label", binary_data=False)]
    result = triton.infer("iris", inputs, outputs=outputs, request_id="req-7")
    assert result.as_numpy("label").tolist() == LABELS
    assert result.as_numpy("probabilities") is None
    assert result.get_response()["id"] == "req-7"


def test_errors_reach_the_client_as_400(triton: httpclient.InferenceServerClient) -> None:
    tensor = httpclient.InferInput("input-0", [1, 3], "FP32")
    tensor.set_data_from_numpy(np.zeros((1, 3), dtype=np.float32))
    with pytest.raises(InferenceServerException) as caught:
        triton.infer("iris", [tensor])
    assert caught.value.status() == "400"
    # The shape it got and the shape it needs, not every feature listed as a missing input.
    message = caught.value.message()
    assert "'input-0': shape [1, 3] does not fit" in message and "[N, 4]" in message, message
    assert "missing input" not in message and "unknown input" not in message
    bad = httpclient.InferInput("input-0", [1, 4], "FP32")
    bad.set_data_from_numpy(np.array([[5.0, 3.2, np.nan, 0.3]], dtype=np.float32))
    with pytest.raises(InferenceServerException, match=r"petal_length'?: not finite") as caught:
        triton.infer("iris", [bad])
    assert caught.value.status() == "400"
    with pytest.raises(InferenceServerException, match="unknown model") as caught:
        triton.infer("lily", [tensor])
    assert caught.value.status() == "404"


# -- the protocol's error shape, in process -------------------------------------------------

GOOD = {"name": "x", "datatype": "FP64", "shape": [1, 4], "data": [5.0, 3.2, 1.5, 0.3]}
SCHEMA = Schema(tuple(Field(name) for name in IRIS_FEATURES))  # the Iris model's: four numbers


def infer(client: FlaskClient, body: object, headers: dict | None = None, raw: bytes | None = None):
    data = raw if raw is not None else json.dumps(body)
    return client.post("/v2/models/iris/infer", data=data, headers=headers or {})


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "'inputs' must be a non-empty list"),
        ({"inputs": []}, "'inputs' must be a non-empty list"),
        ({"inputs": [1]}, "must be an object with a 'name'"),
        ({"inputs": [{**GOOD, "datatype": "INT64"}]}, 'datatype "INT64" is not supported'),
        ({"inputs": [{**GOOD, "datatype": "BYTES"}]}, "is not supported"),
        # Found by schemathesis (tests/test_openapi.py): a list here was a 500 (unhashable).
        ({"inputs": [{**GOOD, "datatype": ["FP32"]}]}, 'datatype ["FP32"] is not supported'),
        ({"inputs": [{**GOOD, "shape": [1, -4]}]}, "shape must be"),
        ({"inputs": [{**GOOD, "shape": "1x4"}]}, "shape must be"),
        ({"inputs": [{**GOOD, "shape": [2, 4]}]}, "needs 8"),
        ({"inputs": [{**GOOD, "data": [5.0, 3.2, "1.5", 0.3]}]}, 'found "1.5"'),
        ({"inputs": [{**GOOD, "data": [5.0, 3.2, True, 0.3]}]}, "found true"),
        ({"inputs": [{**GOOD, "data": [5.0, 3.2, None, 0.3]}]}, "found null"),
        # Nested data is checked as strictly as flat data (the fast path hands these to the walk).
        ({"inputs": [{**GOOD, "data": [[5.0, 3.2], [True, 0.3]]}]}, "found true"),
        ({"inputs": [{**GOOD, "data": [[5.0, 3.2], ["1.5", 0.3]]}]}, 'found "1.5"'),
        ({"inputs": [{**GOOD, "data": [[5.0, 3.2], {"a": 1.5}, 0.3]}]}, 'found {"a": 1.5}'),
        ({"inputs": [{**GOOD, "data": [[5.0, 3.2, 1.5]]}]}, "data holds 3 values but shape [1, 4] needs 4"),
        ({"inputs": [{**GOOD, "data": [5.0, 3.2, 10**400, 0.3]}]}, "too large"),
        ({"inputs": [{**GOOD, "datatype": "FP32", "data": [5.0, 3.2, 1e39, 0.3]}]}, "not finite"),
        ({"inputs": [{k: v for k, v in GOOD.items() if k != "data"}]}, "no data"),
        ({"inputs": [{**GOOD, "shape": [0, 4], "data": []}]}, "N is 0"),
        # Found by schemathesis' command line: no values, but dimensions numpy cannot hold (a 500).
        (
            {"inputs": [{**GOOD, "shape": [0, 2**62, 2**62], "data": []}]},
            "shape [0, 4611686018427387904, 4611686018427387904] is too large",
        ),
        ({"inputs": [GOOD, GOOD]}, "input given twice"),
        ({"inputs": [{**GOOD, "name": "petal_length", "shape": [1], "data": [1.5]}]}, "missing input"),
        ({"inputs": [GOOD], "outputs": [{"name": "colour"}]}, 'unknown output "colour"'),
        ({"inputs": [GOOD], "outputs": "label"}, "'outputs' must be a list"),
        ([GOOD], "must be a JSON object"),
    ],
)
def test_bad_requests_are_400_with_the_protocol_error(client: FlaskClient, body: object, needle: str) -> None:
    res = infer(client, body)
    assert res.status_code == 400, res.get_json()
    assert list(res.get_json()) == ["error"]
    assert needle in res.get_json()["error"]


def test_every_form_of_tensor_data_gets_the_same_answers(client: FlaskClient) -> None:
    """Flat, nested, deeper and mixed nesting, ints among floats, and the binary extension: one
    set of rows, one answer (the flat and nested forms take a fast path, the others the walk)."""
    rows = np.round(np.random.default_rng(3).uniform([4.3, 2.0, 1.0, 0.1], [7.9, 4.4, 6.9, 2.5], (500, 4)), 1)
    rows[::7, 0] = 5  # whole numbers parse to ints: accepted for a float tensor
    data = [int(v) if v == 5 else v for v in rows.ravel().tolist()]
    nested = [data[i : i + 4] for i in range(0, len(data), 4)]
    forms = {
        "flat": data,
        "nested": nested,
        "deeper": [[row[:2], row[2:]] for row in nested],
        "mixed": [nested[0], *data[4:]],
    }
    answers = {}
    for form, values in forms.items():
        res = infer(client, {"inputs": [{**GOOD, "shape": [500, 4], "data": values}]})
        assert res.status_code == 200, (form, res.get_json())
        answers[form] = {o["name"]: o["data"] for o in res.get_json()["outputs"]}
    header = json.dumps(
        {
            "inputs": [
                {
                    **{k: v for k, v in GOOD.items() if k != "data"},
                    "shape": [500, 4],
                    "parameters": {"binary_data_size": rows.size * 8},
                }
            ]
        }
    ).encode()
    res = infer(client, None, {HEADER_LENGTH: str(len(header))}, header + rows.astype("<f8").tobytes())
    assert res.status_code == 200, res.get_json()
    answers["binary"] = {o["name"]: o["data"] for o in res.get_json()["outputs"]}
    assert all(found == answers["flat"] for found in answers.values())
    assert len(answers["flat"]["label"]) == 500 and set(answers["flat"]["label"]) == set(LABELS)


def test_the_common_request_is_read_in_one_typed_pass_and_answers_as_the_general_reader(client) -> None:
    """Flat FP32/FP64 data is read by msgspec with its values typed as numbers
    (mldeploy/api/v2/typed_body.py); the same request with a nested parameter goes through the
    general reader: the same answer."""
    rows = np.round(np.random.default_rng(4).uniform([4.3, 2.0, 1.0, 0.1], [7.9, 4.4, 6.9, 2.5], (300, 4)), 1)
    data = [int(v) if v == 5 else v for v in rows.ravel().tolist()]
    body = {
        "id": "typed-1",
        "parameters": {"binary_data_output": False},
        "inputs": [{**GOOD, "shape": [300, 4], "data": data}],
        "outputs": [{"name": "label"}, {"name": "probabilities", "parameters": {"binary_data": False}}],
    }
    read = typed_body(json.dumps(body).encode())
    assert read == body
    assert type(read["inputs"][0]["data"]) is CheckedNumbers
    general = {**body, "parameters": {"binary_data_output": False, "note": {"nested": True}}}
    assert typed_body(json.dumps(general).encode()) is None
    typed_answer, general_answer = infer(client, body), infer(client, general)
    assert typed_answer.status_code == general_answer.status_code == 200
    assert typed_answer.get_json() == general_answer.get_json()
    assert typed_answer.get_json()["id"] == "typed-1"


def test_a_one_row_tensor_read_without_numpy_answers_as_that_row_of_a_batch(client: FlaskClient) -> None:
    """A [1, 4] FP32/FP64 tensor of plain numbers is read as one row of Python floats
    (``protocol._one_row``): every form of it answers as the same row in a batch, which the
    general path reads. Values near float32's rounding and ints among floats included."""
    from mldeploy.api.v2 import protocol

    rng = np.random.default_rng(5)
    rows = rng.uniform([4.3, 2.0, 1.0, 0.1], [7.9, 4.4, 6.9, 2.5], (150, 4))
    rows[::5] = np.round(rows[::5], 1)  # decimals a float32 cast moves across a threshold or not
    data = [[int(v) if v == round(v) else v for v in row] for row in rows.tolist()]
    for datatype in ("FP32", "FP64"):
        batch = infer(client, {"inputs": [{**GOOD, "datatype": datatype, "shape": [150, 4], "data": data}]})
        assert batch.status_code == 200, batch.get_json()
        outputs = {o["name"]: o["data"] for o in batch.get_json()["outputs"]}
        for i, row in enumerate(data):
            for values in (row, [row]):  # flat and nested
                tensor = {**GOOD, "datatype": datatype, "shape": [1, 4], "data": values}
                assert protocol._one_row([tensor], b"", SCHEMA) is not None
                res = infer(client, {"inputs": [tensor]})
                assert res.status_code == 200, res.get_json()
                one = {o["name"]: o["data"] for o in res.get_json()["outputs"]}
                assert one["label"] == [outputs["label"][i]]
                assert one["probabilities"] == outputs["probabilities"][3 * i : 3 * i + 3]
    # Anything else takes the general path: binary data, parameters, another shape, a bool.
    assert protocol._one_row([GOOD], b"\0" * 16, SCHEMA) is None
    assert protocol._one_row([{**GOOD, "parameters": {}}], b"", SCHEMA) is None
    assert protocol._one_row([{**GOOD, "shape": [4]}], b"", SCHEMA) is None
    assert protocol._one_row([{**GOOD, "data": [5.0, True, 1.5, 0.3]}], b"", SCHEMA) is None


@pytest.mark.parametrize(
    "tensor",
    [
        {**GOOD, "datatype": "INT64", "data": [5, 3, 1, 0]},
        {**GOOD, "datatype": "BYTES", "data": ["a", "b", "c", "d"]},
        {**GOOD, "data": [[5.0, 3.2], [1.5, 0.3]]},
        {**GOOD, "data": [5.0, 3.2, None, 0.3]},
        {**GOOD, "data": [5.0, 3.2, True, 0.3]},
        {**GOOD, "data": [5.0, 3.2, "1.5", 0.3]},
        {**GOOD, "data": [5.0, 3.2, 10**400, 0.3]},
        {**GOOD, "colour": "red"},
        {**GOOD, "shape": [1, True]},
    ],
    ids=["int64", "bytes", "nested", "null", "bool", "string", "huge", "unknown-key", "bool-shape"],
)
def test_what_the_typed_request_reader_does_not_take_is_left_to_the_general_reader(tensor: dict) -> None:
    raw = json.dumps({"inputs": [tensor]}).encode()
    assert typed_body(raw) is None


def test_binary_data_must_add_up(client: FlaskClient) -> None:
    header = json.dumps(
        {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 4], "parameters": {"binary_data_size": 16}}]}
    ).encode()
    values = np.array([5.0, 3.2, 1.5, 0.3], dtype="<f4").tobytes()
    ok = infer(client, None, {HEADER_LENGTH: str(len(header))}, header + values)
    assert ok.status_code == 200 and ok.get_json()["outputs"][0]["data"] == ["setosa"]
    for length, tail in [(str(len(header)), values[:8]), (str(len(header)), values + b"xx"), ("-1", values)]:
        res = infer(client, None, {HEADER_LENGTH: length}, header + tail)
        assert res.status_code == 400 and "error" in res.get_json()


def test_protocol_errors_for_paths_methods_versions_and_limits(client: FlaskClient, model_dir: Path) -> None:
    assert client.get("/v2/nowhere").get_json() == {"error": "Not found: no route for GET /v2/nowhere"}
    wrong_method = client.get("/v2/models/iris/infer")
    assert wrong_method.status_code == 405 and "POST" in wrong_method.headers["Allow"]
    assert "error" in wrong_method.get_json()
    missing = client.get("/v2/models/iris/versions/nope")
    # A version in the path may be any saved one (pinned); one that was never saved is a 404 naming it.
    assert missing.status_code == 404 and "no saved version 'nope'" in missing.get_json()["error"]
    compressed = infer(client, {"inputs": [GOOD]}, {"Content-Encoding": "gzip"})
    assert compressed.status_code == 415 and "error" in compressed.get_json()
    # Outside /v2 nothing changes: the service's own shape.
    assert "message" in client.get("/nowhere").get_json()


def test_not_ready_is_503_with_the_protocol_error(model_dir: Path) -> None:
    app = create_app({"TESTING": True, "MODEL_DIR": str(model_dir), "WARMUP": False, "LAZY_TRAIN": False})
    client = app.test_client()
    assert client.get("/v2/health/live").status_code == 200
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 503 and ready.get_json()["ready"] is False
    res = infer(client, {"inputs": [GOOD]})
    assert res.status_code == 503 and res.get_json()["error"].startswith("Model not ready")


# -- the protocol's own REST description ----------------------------------------------------
# Checked against kserve/open-inference-protocol at commit d49cc23: the paths, methods and
# statuses of specification/protocol/open_inference_rest.yaml, the path forms of the table in
# inference_rest.md (the version part optional, the server metadata path written both `v2` and
# `/v2/`), and the fields each response object requires with their JSON types. No package ships
# that document, so these checks are our own reading of it, not a copy.


@dataclass(frozen=True)
class Shape:
    """A JSON object the protocol defines: its required fields and optional ones, with types (a
    Python type, a one-item list for "a list of", or another Shape)."""

    required: dict
    optional: dict = field(default_factory=dict)


def problems(value: object, kind: object, where: str = "body") -> list[str]:
    """How ``value`` departs from ``kind``; empty when it conforms."""
    if isinstance(kind, Shape):
        if not isinstance(value, dict):
            return [f"{where} is not an object"]
        found = [f"{where}.{name} is missing" for name in kind.required if name not in value]
        for name, sub in {**kind.required, **kind.optional}.items():
            if name in value:
                found += problems(value[name], sub, f"{where}.{name}")
        return found
    if isinstance(kind, list):
        if not isinstance(value, list):
            return [f"{where} is not a list"]
        return [p for i, item in enumerate(value) for p in problems(item, kind[0], f"{where}[{i}]")]
    if kind is int and isinstance(value, bool):
        return [f"{where} is a boolean, not an integer"]
    return [] if isinstance(value, kind) else [f"{where} is {type(value).__name__}, not {kind.__name__}"]  # type: ignore[arg-type]


SERVER_METADATA = Shape({"name": str, "version": str, "extensions": [str]})
TENSOR_METADATA = Shape({"name": str, "datatype": str, "shape": [int]})
MODEL_METADATA = Shape(
    {"name": str, "platform": str},
    {"versions": [str], "inputs": [TENSOR_METADATA], "outputs": [TENSOR_METADATA], "properties": dict},
)
MODEL_READY = Shape({"name": str, "ready": bool})
RESPONSE_OUTPUT = Shape({"name": str, "shape": [int], "datatype": str, "data": list}, {"parameters": dict})
INFERENCE_RESPONSE = Shape(
    {"model_name": str, "outputs": [RESPONSE_OUTPUT]}, {"model_version": str, "id": str, "parameters": dict}
)
ERROR = Shape({"error": str})
INFERENCE_REQUEST = {"id": "spec-1", "inputs": [GOOD]}

# (method, path, status, the response object): {model} and {version} are the served ones. Each
# is asked with and without a trailing slash.
SPEC_ANSWERS = [
    ("GET", "/v2/health/live", 200, None),  # the document gives no body for the health probes
    ("GET", "/v2/health/ready", 200, None),
    ("GET", "/v2/models/{model}/versions/{version}/ready", 200, MODEL_READY),
    ("GET", "/v2/models/{model}/ready", 200, MODEL_READY),
    ("GET", "/v2/", 200, SERVER_METADATA),  # inference_rest.md writes it `v2`: both forms are asked
    ("GET", "/v2/models/{model}/versions/{version}", 200, MODEL_METADATA),
    ("GET", "/v2/models/{model}", 200, MODEL_METADATA),
    ("POST", "/v2/models/{model}/versions/{version}/infer", 200, INFERENCE_RESPONSE),
    ("POST", "/v2/models/{model}/infer", 200, INFERENCE_RESPONSE),
    ("POST", "/v2/models/{model}/versions/{version}/infer", 400, ERROR),
    ("POST", "/v2/models/{model}/infer", 400, ERROR),
]


def spec_url(server: str, path: str, version: str, slash: bool) -> str:
    """The URL of a spec path for the served model, with or without a trailing slash."""
    path = path.format(model="iris", version=version).rstrip("/")
    return f"http://{server}{path}{'/' if slash else ''}"


@pytest.fixture(scope="module")
def served_version(server: str) -> str:
    return requests.get(f"http://{server}/v2/models/iris", timeout=10).json()["versions"][0]


@pytest.mark.parametrize("slash", [False, True], ids=["no-slash", "slash"])
@pytest.mark.parametrize(
    ("method", "path", "status", "answer"), [pytest.param(*a, id=f"{a[0]} {a[1]} {a[2]}") for a in SPEC_ANSWERS]
)
def test_the_protocols_rest_document(
    server: str, served_version: str, method: str, path: str, status: int, answer: Shape | None, slash: bool
) -> None:
    url = spec_url(server, path, served_version, slash)
    body = INFERENCE_REQUEST if status == 200 else {"inputs": [{**GOOD, "shape": [2, 4]}]}
    # allow_redirects=False: an answer must come on the URL asked, a redirect would lose a POST's body.
    res = requests.request(method, url, json=body if method == "POST" else None, timeout=30, allow_redirects=False)
    assert res.status_code == status, (url, res.status_code, res.text[:300])
    if answer is not None:
        assert res.headers["Content-Type"].startswith("application/json")
        assert problems(res.json(), answer) == [], res.text[:500]
    if answer is INFERENCE_RESPONSE:
        assert res.json()["id"] == INFERENCE_REQUEST["id"]  # "if specified ... must be returned"


@pytest.mark.parametrize("slash", [False, True], ids=["no-slash", "slash"])
@pytest.mark.parametrize("path", sorted({p for _, p, _, _ in SPEC_ANSWERS}))
def test_a_method_the_document_does_not_give_is_405_with_the_protocol_error(
    server: str, served_version: str, path: str, slash: bool
) -> None:
    defined = {m for m, p, _, _ in SPEC_ANSWERS if p == path}
    for method in {"TRACE", "DELETE", "PUT", "GET", "POST"} - defined:
        res = requests.request(method, spec_url(server, path, served_version, slash), timeout=30, allow_redirects=False)
        assert res.status_code == 405, (method, path, res.status_code, res.text[:200])
        assert set(res.headers["Allow"].replace(" ", "").split(",")) >= defined
        if method != "TRACE":  # some clients drop a TRACE answer's body; the status is the point
            assert problems(res.json(), ERROR) == []


def test_errors_of_the_metadata_paths_are_the_protocols_error_object(server: str) -> None:
    # The document's error objects for server and model metadata: {"error": string}, a 4xx.
    for url in ("/v2/models/lily", "/v2/models/lily/ready", "/v2/models/iris/versions/none", "/v2/nowhere/"):
        res = requests.get(f"http://{server}{url}", timeout=10)
        assert 400 <= res.status_code < 500 and problems(res.json(), ERROR) == [], (url, res.text)
