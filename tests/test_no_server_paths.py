"""No answer shows the server's file system (issue 11.5): every 404, 409 and 503 the API can give
(and the 400 of a training on a missing file) names the version and the reason, never a path;
the server's log line keeps the path for the operator."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import filelock
import pytest
from flask.testing import FlaskClient

from mldeploy.http.app import create_app
from modeler.modeler import Modeler
from modeler.store import ARTIFACT_FILE, LOCK_FILE, VERSIONS_DIR, ModelStore
from tests.support import SEED_ROW, pretend_saved_with, truncate_artifact

ADMIN_KEY = "paths-admin-key"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
UNKNOWN = "20990101T000000Z-000000"
V2_INFER = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": list(SEED_ROW.values())}]}
# Every route that needs the model, so every one that answers 503 when it cannot be made ready.
MODEL_ROUTES = [
    ("POST", "/predict", SEED_ROW),
    ("GET", "/ready", None),
    ("GET", "/model", None),
    ("GET", "/v2/health/ready", None),
    ("GET", "/v2/models/iris", None),
    ("GET", "/v2/models/iris/ready", None),
    ("POST", "/v2/models/iris/infer", V2_INFER),
]


def client_for(model_dir: Path, modeler: Modeler | None = None, **config: object) -> FlaskClient:
    settings = {"MODEL_DIR": str(model_dir), "WARMUP": False, "ADMIN_KEY": ADMIN_KEY, "PROPAGATE_EXCEPTIONS": False}
    return create_app({**settings, **config}, modeler=modeler).test_client()


def call(client: FlaskClient, method: str, path: str, body: object = None):
    return client.open(path, method=method, json=body, headers=AUTH)


def assert_no_path(res, status: int, tmp_path: Path) -> str:
    """The answer has the status and is JSON; returns its text, which names no server path."""
    text = res.get_data(as_text=True)
    assert res.status_code == status, text
    assert res.is_json, text
    assert str(tmp_path) not in text and "/tmp/" not in text, text
    return text


# -- 404 and 409 ---------------------------------------------------------------------------------


def two_versions(model_dir: Path) -> tuple[str, str]:
    first = Modeler(model_dir).fit().version
    return first, Modeler(model_dir).fit(max_depth=1).version


def damage_truncated(model_dir: Path, version: str) -> None:
    truncate_artifact(model_dir, version)


def damage_missing_file(model_dir: Path, version: str) -> None:
    (model_dir / VERSIONS_DIR / version / ARTIFACT_FILE).unlink()


def damage_other_sklearn(model_dir: Path, version: str) -> None:
    pretend_saved_with(model_dir, version, "0.24.2")


@pytest.mark.parametrize("version", [UNKNOWN, "../../etc"])
def test_activating_an_unknown_version_is_404_without_the_model_directory(
    model_dir: Path, tmp_path: Path, version: str, caplog: pytest.LogCaptureFixture
) -> None:
    two_versions(model_dir)
    with caplog.at_level(logging.WARNING):
        text = assert_no_path(
            call(client_for(model_dir), "POST", "/model/activate", {"version": version}), 404, tmp_path
        )
    assert version in text
    if version == UNKNOWN:  # the operator's log line has the directory
        assert any(str(model_dir) in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("damage", [damage_truncated, damage_missing_file, damage_other_sklearn])
def test_activating_a_damaged_version_is_409_without_paths(
    model_dir: Path, tmp_path: Path, damage: Callable[[Path, str], None]
) -> None:
    first, _ = two_versions(model_dir)
    damage(model_dir, first)
    text = assert_no_path(call(client_for(model_dir), "POST", "/model/activate", {"version": first}), 409, tmp_path)
    assert first in text


@pytest.mark.parametrize(("method", "path"), [("POST", "/model/train"), ("POST", "/model/activate")])
def test_writing_a_read_only_directory_is_409_without_its_path(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str, path: str
) -> None:
    first, _ = two_versions(model_dir)
    monkeypatch.setattr(ModelStore, "writable", lambda self: False)  # root ignores file modes
    body = {"version": first} if path.endswith("activate") else None
    assert "read-only" in assert_no_path(call(client_for(model_dir), method, path, body), 409, tmp_path)


def test_a_schema_change_is_409_without_paths(model_dir: Path, tmp_path: Path) -> None:
    Modeler(model_dir).fit()
    data = tmp_path / "data" / "other.csv"
    data.parent.mkdir()
    data.write_text("a,b,label\n" + "\n".join(f"{i},{i % 3},{'xy'[i % 2]}" for i in range(20)) + "\n")
    res = call(client_for(model_dir, DATA=str(data), TARGET="label"), "POST", "/model/train")
    assert "sepal_length" in assert_no_path(res, 409, tmp_path)


def test_v2_unknown_model_and_version_are_404_without_paths(model_dir: Path, tmp_path: Path) -> None:
    Modeler(model_dir).fit()
    client = client_for(model_dir)
    for path in ("/v2/models/lily", f"/v2/models/iris/versions/{UNKNOWN}", "/no/such/route"):
        assert_no_path(call(client, "GET", path), 404, tmp_path)


# -- 503 (and the 400 of unusable training data) ---------------------------------------------------


def not_ready_no_model(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    return client_for(model_dir, LAZY_TRAIN=False)


def not_ready_corrupt(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    truncate_artifact(model_dir, Modeler(model_dir).fit().version)
    return client_for(model_dir, ON_CORRUPT="fail")


def not_ready_missing_artifact(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    damage_missing_file(model_dir, Modeler(model_dir).fit().version)
    return client_for(model_dir, ON_CORRUPT="fail")


def not_ready_incompatible(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    pretend_saved_with(model_dir, Modeler(model_dir).fit().version, "0.24.2")
    return client_for(model_dir, ON_INCOMPATIBLE="fail")


def not_ready_missing_data(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    return client_for(model_dir, DATA=str(model_dir.parent / "absent" / "training.csv"))


def not_ready_read_only(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> FlaskClient:
    monkeypatch.setattr(ModelStore, "writable", lambda self: False)  # an empty, read-only directory
    return client_for(model_dir)


@pytest.mark.parametrize(
    "make",
    [
        not_ready_no_model,
        not_ready_corrupt,
        not_ready_missing_artifact,
        not_ready_incompatible,
        not_ready_missing_data,
        not_ready_read_only,
    ],
)
def test_every_503_names_the_reason_without_paths(
    model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, make: Callable[..., FlaskClient]
) -> None:
    client = make(model_dir, monkeypatch)
    for method, path, body in MODEL_ROUTES:
        text = assert_no_path(call(client, method, path, body), 503, tmp_path)
        assert "Model not ready" in text or "model not ready" in text.lower()


def test_waiting_for_another_writer_is_503_without_the_lock_path(model_dir: Path, tmp_path: Path) -> None:
    client = client_for(model_dir, modeler=Modeler(model_dir, lock_timeout=0.2))
    model_dir.mkdir(exist_ok=True)
    with filelock.FileLock(model_dir / LOCK_FILE):  # another process is training
        for method, path, body in [("POST", "/predict", SEED_ROW), ("POST", "/model/train", None)]:
            text = assert_no_path(call(client, method, path, body), 503, tmp_path)
            assert "training lock" in text


def test_training_on_a_missing_file_is_400_naming_the_file_only(model_dir: Path, tmp_path: Path) -> None:
    Modeler(model_dir).fit()
    missing = tmp_path / "absent" / "training.csv"
    text = assert_no_path(call(client_for(model_dir, DATA=str(missing)), "POST", "/model/train"), 400, tmp_path)
    assert "training.csv" in text
