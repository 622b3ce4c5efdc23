"""Versions in one process: activate (rollback), retention, retrain|fail policies for corrupt and
incompatible models, training parameters, read-only directories, stray temp clean-up; the admin
endpoints through the test client; the CLI's train/activate/versions."""

from __future__ import annotations

import json
from pathlib import Path

import filelock
import pytest
from flask.testing import FlaskClient

from mldeploy.cli import exit_codes
from mldeploy.cli import main as cli
from mldeploy.http.app import create_app
from modeler import errors
from modeler.errors import (
    IncompatibleModelError,
    InvalidInput,
    ModelIntegrityError,
    ModelNotReady,
    ReadOnlyModelDir,
    VersionNotFound,
    VersionUnusable,
)
from modeler.modeler import VERSION_SUMMARY, Modeler
from modeler.store import LOCK_FILE, POINTER_FILE, VERSIONS_DIR, ModelStore
from modeler.tree_params import INVALID_PARAMS
from tests.support import SEED_ROW, pretend_saved_with, truncate_artifact

ADMIN_KEY = "test-admin-key"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
SEED_LIST = list(SEED_ROW.values())


def saved(model_dir: Path) -> list[str]:
    return sorted(p.name for p in (model_dir / VERSIONS_DIR).iterdir() if not p.name.startswith("."))


def two_versions(model_dir: Path) -> tuple[str, str]:
    """Two saved versions that answer differently; the second is current."""
    first = Modeler(model_dir).fit().version
    second = Modeler(model_dir).fit(max_depth=1).version
    return first, second


# -- activate -------------------------------------------------------------------------------


def test_activate_rolls_back_and_other_instances_follow(model_dir: Path) -> None:
    first, second = two_versions(model_dir)
    reader = Modeler(model_dir, poll_interval=0)
    assert reader.infer(SEED_LIST).version == second
    meta = Modeler(model_dir).activate(first)
    assert meta["version"] == first
    assert (model_dir / POINTER_FILE).read_text().strip() == first
    result = reader.infer(SEED_LIST)
    assert result.version == first and result.labels == ["setosa"]
    assert [v["version"] for v in reader.versions() if v["current"]] == [first]


def test_activate_unknown_or_corrupt_version_changes_nothing(model_dir: Path) -> None:
    first, second = two_versions(model_dir)
    third = Modeler(model_dir).fit().version
    with pytest.raises(VersionNotFound):
        Modeler(model_dir).activate("20990101T000000Z-000000")
    with pytest.raises(VersionNotFound):
        Modeler(model_dir).activate("../../etc")
    truncate_artifact(model_dir, first)
    with pytest.raises(VersionUnusable, match="sha256"):
        Modeler(model_dir).activate(first)
    pretend_saved_with(model_dir, second, "0.24.2")
    with pytest.raises(VersionUnusable, match=r"0\.24\.2"):
        Modeler(model_dir).activate(second)
    assert (model_dir / POINTER_FILE).read_text().strip() == third


def test_a_hand_edited_pointer_to_a_broken_version_keeps_the_served_one(model_dir: Path) -> None:
    first, second = two_versions(model_dir)
    reader = Modeler(model_dir, poll_interval=0)
    assert reader.infer(SEED_LIST).version == second
    truncate_artifact(model_dir, first)
    (model_dir / POINTER_FILE).write_text(first + "\n")
    assert reader.infer(SEED_LIST).version == second
    (model_dir / POINTER_FILE).write_text("20990101T000000Z-000000\n")
    assert reader.infer(SEED_LIST).version == second


# -- retention ------------------------------------------------------------------------------


def test_retention_keeps_the_last_n_and_never_the_current_one(model_dir: Path) -> None:
    modeler = Modeler(model_dir, keep_versions=3)
    made = [modeler.fit().version for _ in range(5)]
    assert saved(model_dir) == sorted(made[-3:])
    assert modeler.version == made[-1]
    modeler.activate(made[2])  # roll back to the oldest kept one, then train again
    assert modeler.fit().version not in made
    assert len(saved(model_dir)) == 3 and made[2] not in saved(model_dir)
    assert not list(model_dir.rglob(".tmp-*"))
    store = ModelStore(model_dir)
    with pytest.raises(ValueError, match="is current"):
        store.delete(store.current_version())


@pytest.mark.parametrize("keep", [0, -1, 1.5, True, "3"])
def test_bad_retention_is_refused(keep: object) -> None:
    with pytest.raises(ValueError, match="keep_versions"):
        Modeler(keep_versions=keep)


# -- corrupt and incompatible current versions ----------------------------------------------


def test_truncated_current_version_is_retrained_by_default(model_dir: Path) -> None:
    broken = Modeler(model_dir).fit().version
    truncate_artifact(model_dir, broken)
    modeler = Modeler(model_dir)
    assert modeler.predict(SEED_ROW) == "setosa"
    assert modeler.version != broken
    assert saved(model_dir) == sorted([broken, modeler.version])  # the broken one stays, not current
    assert Modeler(model_dir).load().version == modeler.version


def test_truncated_current_version_fails_when_told(model_dir: Path) -> None:
    broken = Modeler(model_dir).fit().version
    truncate_artifact(model_dir, broken)
    for modeler in (Modeler(model_dir, on_corrupt="fail"), Modeler(model_dir, lazy_train=False)):
        with pytest.raises(ModelIntegrityError, match="sha256"):
            modeler.predict(SEED_ROW)
    assert saved(model_dir) == [broken]


def test_incompatible_current_version_follows_its_policy(model_dir: Path) -> None:
    old = Modeler(model_dir).fit().version
    pretend_saved_with(model_dir, old, "0.24.2")
    with pytest.raises(IncompatibleModelError, match=r"0\.24\.2"):
        Modeler(model_dir, on_incompatible="fail").predict(SEED_ROW)
    with pytest.raises(IncompatibleModelError):  # on_corrupt does not cover it
        Modeler(model_dir, on_corrupt="retrain", on_incompatible="fail").predict(SEED_ROW)
    modeler = Modeler(model_dir, on_corrupt="fail")
    assert modeler.predict(SEED_ROW) == "setosa"
    assert modeler.version != old


def test_pointer_to_a_missing_version_counts_as_corrupt(model_dir: Path) -> None:
    Modeler(model_dir).fit()
    (model_dir / POINTER_FILE).write_text("20990101T000000Z-000000\n")
    with pytest.raises(ModelIntegrityError, match="missing"):
        Modeler(model_dir, on_corrupt="fail").predict(SEED_ROW)
    assert Modeler(model_dir).predict(SEED_ROW) == "setosa"


def test_a_failing_model_is_not_reread_on_every_call(model_dir: Path, monkeypatch) -> None:
    truncate_artifact(model_dir, Modeler(model_dir).fit().version)
    modeler = Modeler(model_dir, on_corrupt="fail", poll_interval=60)
    reads = []
    # Serving reads a version through load_compiled (tree arrays), load() unpickles: count both.
    for name in ("load", "load_compiled"):
        real = getattr(ModelStore, name)
        monkeypatch.setattr(ModelStore, name, lambda self, v, real=real: reads.append(v) or real(self, v))
    for _ in range(5):
        with pytest.raises(ModelIntegrityError, match="sha256"):
            modeler.predict(SEED_ROW)
    assert len(reads) == 1


@pytest.mark.parametrize("setting", ["on_corrupt", "on_incompatible"])
def test_unknown_policy_is_refused(setting: str) -> None:
    with pytest.raises(ValueError, match=setting):
        Modeler(**{setting: "ignore"})


def test_unknown_policy_in_the_environment_names_the_setting(monkeypatch, model_dir: Path) -> None:
    monkeypatch.setenv("MLDEPLOY_ON_CORRUPT", "ignore")
    with pytest.raises(ValueError, match=r"^MLDEPLOY_ON_CORRUPT: must be 'retrain' or 'fail', got 'ignore'$"):
        create_app({"MODEL_DIR": str(model_dir), "WARMUP": False})


# -- training parameters --------------------------------------------------------------------


def test_fit_takes_tree_parameters_for_that_version_only(model_dir: Path) -> None:
    modeler = Modeler(model_dir, max_depth=3)
    assert modeler.fit(max_depth=1, criterion="entropy").metadata["params"]["criterion"] == "entropy"
    assert modeler.metadata["tree"]["depth"] == 1
    assert modeler.fit().metadata["params"]["max_depth"] == 3


def test_bad_tree_parameters_are_named(model_dir: Path) -> None:
    with pytest.raises(InvalidInput) as caught:
        Modeler(model_dir).fit(max_dept=2, max_depth=-1, criterion="best", min_samples_leaf=True)
    assert caught.value.message == INVALID_PARAMS
    problems = {e.field: e.problem for e in caught.value.errors}
    assert set(problems) == {"max_dept", "max_depth", "criterion", "min_samples_leaf"}
    assert problems["max_dept"].startswith("unknown tree parameter; valid: ccp_alpha")
    assert "range [1, inf)" in problems["max_depth"]
    assert "gini" in problems["criterion"]
    assert problems["min_samples_leaf"] == errors.BOOLEAN
    assert not (model_dir / VERSIONS_DIR).exists()


# -- read-only model directory and stray temp files -----------------------------------------


def test_read_only_directory_serves_but_refuses_to_write(model_dir: Path, monkeypatch) -> None:
    first, _ = two_versions(model_dir)
    monkeypatch.setattr(ModelStore, "writable", lambda self: False)
    modeler = Modeler(model_dir)
    assert modeler.predict(SEED_ROW) == "setosa"
    with pytest.raises(ReadOnlyModelDir, match="read-only"):
        modeler.fit()
    with pytest.raises(ReadOnlyModelDir, match="read-only"):
        modeler.activate(first)
    empty = model_dir.parent / "empty"
    empty.mkdir()
    with pytest.raises(ModelNotReady, match=r"no saved model.*read-only"):
        Modeler(empty).predict(SEED_ROW)


def test_stray_temp_files_are_removed_at_start_unless_a_writer_holds_the_lock(model_dir: Path) -> None:
    Modeler(model_dir).fit()
    strays = [model_dir / VERSIONS_DIR / ".tmp-killed", model_dir / ".tmp-pointer"]
    strays[0].mkdir()
    strays[1].write_text("half")
    with filelock.FileLock(model_dir / LOCK_FILE):  # a live writer: its temp files are in use
        assert Modeler(model_dir).predict(SEED_ROW) == "setosa"
        assert all(p.exists() for p in strays)
    assert Modeler(model_dir).predict(SEED_ROW) == "setosa"
    assert not any(p.exists() for p in strays)


# -- HTTP: admin endpoints ------------------------------------------------------------------


@pytest.fixture
def admin(model_dir: Path) -> FlaskClient:
    """A test client with the admin key set, outside testing mode (errors as users see them)."""
    config = {"MODEL_DIR": str(model_dir), "WARMUP": False, "ADMIN_KEY": ADMIN_KEY, "PROPAGATE_EXCEPTIONS": False}
    return create_app(config).test_client()


def test_versions_endpoint_lists_and_marks_the_current_one(admin: FlaskClient, model_dir: Path) -> None:
    assert admin.get("/model/versions").get_json() == {"current": None, "versions": []}
    first, second = two_versions(model_dir)
    body = admin.get("/model/versions").get_json()
    assert body["current"] == second
    assert [(v["version"], v["current"]) for v in body["versions"]] == [(first, False), (second, True)]
    assert set(body["versions"][0]) == set(VERSION_SUMMARY)


def test_train_endpoint_makes_a_new_current_version(admin: FlaskClient) -> None:
    res = admin.post("/model/train", json={"params": {"max_depth": 2}}, headers=AUTH)
    assert res.status_code == 201
    meta = res.get_json()
    assert meta["params"]["max_depth"] == 2 and meta["tree"]["depth"] == 2
    assert admin.post("/predict", json=SEED_ROW).get_json()["ModelVersion"] == meta["version"]
    plain = admin.post("/model/train", headers=AUTH)  # no body at all: the configured parameters
    assert plain.status_code == 201 and plain.get_json()["params"]["max_depth"] is None
    assert admin.get("/model/versions").get_json()["current"] == plain.get_json()["version"]


@pytest.mark.parametrize(
    ("body", "field", "problem"),
    [
        ({"params": {"max_depth": 0}}, "max_depth", "range [1, inf)"),
        ({"params": {"depth": 3}}, "depth", "unknown tree parameter"),
        ({"params": {"self": 3}}, "self", "unknown tree parameter"),
        ({"params": {"splitter": True}}, "splitter", errors.BOOLEAN),
        ({"params": [3]}, "params", "must be an object"),
        ({"max_depth": 3}, "max_depth", errors.UNKNOWN),
    ],
    ids=["bad-value", "unknown-param", "self", "boolean", "params-not-object", "unknown-key"],
)
def test_train_endpoint_names_bad_parameters(admin: FlaskClient, model_dir: Path, body, field, problem) -> None:
    res = admin.post("/model/train", json=body, headers=AUTH)
    assert res.status_code == 400
    found = {e["field"]: e["problem"] for e in res.get_json()["errors"]}
    assert problem in found[field]
    assert not (model_dir / VERSIONS_DIR).exists()


def test_train_endpoint_refuses_non_json_and_needs_the_key(admin: FlaskClient) -> None:
    assert admin.post("/model/train", data="max_depth=3", headers=AUTH).status_code == 415
    assert admin.post("/model/train").status_code == 401
    no_key = create_app({"WARMUP": False, "MODEL_DIR": "unused"}).test_client()
    # No admin key set: no credentials is a 401 (issue 15.2), a key that cannot pass a 403.
    assert no_key.post("/model/train").status_code == 401
    assert no_key.post("/model/train", headers=AUTH).status_code == 403


def test_train_endpoint_takes_no_body_but_refuses_a_blank_one(admin: FlaskClient, model_dir: Path) -> None:
    blank = admin.post("/model/train", data="\n", content_type="application/json", headers=AUTH)
    assert blank.status_code == 400 and blank.get_json()["message"] == "Malformed JSON"
    assert not (model_dir / VERSIONS_DIR).exists()
    assert admin.post("/model/train", headers=AUTH).status_code == 201


def test_activate_endpoint(admin: FlaskClient, model_dir: Path) -> None:
    first, second = two_versions(model_dir)
    assert admin.post("/predict", json=SEED_ROW).get_json()["ModelVersion"] == second
    res = admin.post("/model/activate", json={"version": first}, headers=AUTH)
    assert res.status_code == 200 and res.get_json()["version"] == first
    assert admin.post("/predict", json=SEED_ROW).get_json()["ModelVersion"] == first

    unknown = admin.post("/model/activate", json={"version": "20990101T000000Z-000000"}, headers=AUTH)
    assert unknown.status_code == 404 and "20990101T000000Z-000000" in unknown.get_json()["message"]
    for body, field in [({}, "version"), ({"version": 3}, "version"), ({"version": first, "now": 1}, "now")]:
        res = admin.post("/model/activate", json=body, headers=AUTH)
        assert res.status_code == 400 and [e["field"] for e in res.get_json()["errors"]] == [field]
    truncate_artifact(model_dir, second)
    corrupt = admin.post("/model/activate", json={"version": second}, headers=AUTH)
    assert corrupt.status_code == 409 and "sha256" in corrupt.get_json()["message"]
    assert admin.post("/model/activate", json={"version": first}).status_code == 401
    assert admin.get("/model/versions").get_json()["current"] == first


def test_admin_writes_on_a_read_only_directory_are_409(admin: FlaskClient, model_dir: Path, monkeypatch) -> None:
    first, _ = two_versions(model_dir)
    monkeypatch.setattr(ModelStore, "writable", lambda self: False)
    for path, body in [("/model/train", None), ("/model/activate", {"version": first})]:
        res = admin.post(path, json=body, headers=AUTH)
        assert res.status_code == 409, res.get_json()
        assert "read-only" in res.get_json()["message"]
    assert admin.post("/predict", json=SEED_ROW).status_code == 200


@pytest.mark.parametrize("setting", ["ON_CORRUPT", "ON_INCOMPATIBLE"])
def test_fail_policy_answers_503_with_the_reason(model_dir: Path, setting: str) -> None:
    version = Modeler(model_dir).fit().version
    if setting == "ON_CORRUPT":
        truncate_artifact(model_dir, version)
        reason = "sha256"
    else:
        pretend_saved_with(model_dir, version, "0.24.2")
        reason = "0.24.2"
    config = {"MODEL_DIR": str(model_dir), "WARMUP": False, setting: "fail", "PROPAGATE_EXCEPTIONS": False}
    client = create_app(config).test_client()
    for res in (client.get("/ready"), client.post("/predict", json=SEED_ROW), client.get("/model")):
        assert res.status_code == 503 and res.is_json
        assert reason in res.get_json()["message"]
    retrain = create_app({**config, setting: "retrain"}).test_client()
    assert retrain.post("/predict", json=SEED_ROW).get_json()["ModelVersion"] != version


# -- CLI ------------------------------------------------------------------------------------


@pytest.fixture
def cli_dir(model_dir: Path, monkeypatch) -> Path:
    """The CLI's settings pointed at the test's model directory."""
    monkeypatch.setenv("MLDEPLOY_MODEL_DIR", str(model_dir))
    return model_dir


def test_cli_train_activate_versions(cli_dir: Path, capsys) -> None:
    assert cli.main(["train"]) == 0
    first = json.loads(capsys.readouterr().out)["version"]
    assert cli.main(["train", "--param", "max_depth=1", "--param", "criterion=entropy"]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["params"]["max_depth"] == 1 and second["params"]["criterion"] == "entropy"
    assert cli.main(["activate", first]) == 0
    assert json.loads(capsys.readouterr().out)["current"] is True
    assert cli.main(["versions"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(v["version"], v["current"]) for v in listed] == [(first, True), (second["version"], False)]


def test_cli_errors_have_exit_codes(cli_dir: Path, capsys) -> None:
    assert cli.main(["train", "--param", "max_depth=-2"]) == exit_codes.EXIT_INVALID_INPUT
    assert "max_depth" in capsys.readouterr().err
    assert cli.main(["activate", "20990101T000000Z-000000"]) == exit_codes.EXIT_NOT_FOUND
    assert "20990101T000000Z-000000" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        cli.main(["train", "--param", "max_depth"])
    assert usage.value.code == exit_codes.EXIT_USAGE
