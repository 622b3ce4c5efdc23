"""A version records how it was made, and a retrain keeps a user's model a user's model (issue
11.2): a retrain without other instructions repeats the recipe (also when a corrupt version is
retrained); a training that would change the input fields is refused (409 / exit 1) unless asked
for; a start whose settings name other data says so in one log line and in ``/ready``."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from flask.testing import FlaskClient

from mldeploy.cli import exit_codes
from mldeploy.http.app import create_app
from modeler.errors import ModelNotReady, SchemaChange
from modeler.modeler import Modeler
from modeler.recipe import RECIPE, Recipe
from modeler.store import METADATA_FILE, VERSIONS_DIR
from tests.support import SEED_ROW, clean_env, copy_project, free_port, run_cli, running, truncate_artifact, wait_ready

ADMIN_KEY = "recipe-admin-key"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
CUSTOMER = {"age": 41.0, "income": 52_000.0, "visits": 3.0}
SEGMENTS = ["basic", "gold", "loyal"]


def customers_csv(path: Path, seed: int = 0, rows: int = 120) -> Path:
    """A user's CSV: three numeric features and a ``segment`` label."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.integers(18, 80, rows).astype(float),
            "income": rng.uniform(10_000, 150_000, rows).round(0),
            "visits": rng.integers(0, 30, rows).astype(float),
        }
    )
    frame["segment"] = np.where(frame["income"] > 60_000, "gold", np.where(frame["visits"] > 10, "loyal", "basic"))
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False)
    return path


def survey_csv(path: Path) -> Path:
    """Data with other fields: ``visits`` became ``logins``, and the columns come in another order."""
    frame = pd.read_csv(customers_csv(path)).rename(columns={"visits": "logins"})
    frame[["income", "age", "logins", "segment"]].to_csv(path, index=False)
    return path


@pytest.fixture
def customers(tmp_path: Path) -> Path:
    return customers_csv(tmp_path / "data" / "customers.csv")


@pytest.fixture
def on_customers(model_dir: Path, customers: Path) -> str:
    """The model directory's current version, trained on the customers' CSV (max_depth=3)."""
    return Modeler(model_dir, data=customers, target="segment", max_depth=3).fit().version


def admin_client(model_dir: Path, **config: object) -> FlaskClient:
    settings = {"MODEL_DIR": str(model_dir), "WARMUP": False, "ADMIN_KEY": ADMIN_KEY, "PROPAGATE_EXCEPTIONS": False}
    return create_app({**settings, **config}).test_client()


def without_recipe(model_dir: Path, version: str) -> None:
    """Rewrite a version's metadata as a version saved before recipes were recorded."""
    path = model_dir / VERSIONS_DIR / version / METADATA_FILE
    meta = json.loads(path.read_text())
    del meta[RECIPE]
    path.write_text(json.dumps(meta))


def test_a_version_records_its_recipe(model_dir: Path, customers: Path, on_customers: str) -> None:
    meta = Modeler(model_dir).metadata
    assert meta[RECIPE] == {
        "data": str(customers.resolve()),
        "target": "segment",
        "estimator": "sklearn.tree.DecisionTreeClassifier",
        "params": {"max_depth": 3},
    }
    assert meta["data"]["source"] == "customers.csv"  # the description names no directory


def test_a_retrain_without_instructions_repeats_the_recipe(model_dir: Path, customers: Path, on_customers: str) -> None:
    client = admin_client(model_dir)  # no MLDEPLOY_DATA: this server was never told about the CSV
    res = client.post("/model/train", headers=AUTH)  # the README's call
    assert res.status_code == 201, res.get_json()
    meta = res.get_json()
    assert meta["feature_names"] == list(CUSTOMER) and meta["classes"] == SEGMENTS
    assert meta[RECIPE]["data"] == "customers.csv"  # clients see the file's name, not the server's folders
    assert client.get("/model").get_json()[RECIPE]["data"] == "customers.csv"
    assert str(customers.parent) not in json.dumps(client.get("/model").get_json())
    assert client.post("/predict", json=CUSTOMER).get_json()["Class"] in SEGMENTS
    # The same from Python and from the command line.
    assert Modeler(model_dir).fit().features == tuple(CUSTOMER)
    done = run_cli(model_dir, "train")
    assert done.returncode == exit_codes.EXIT_OK, done.stderr
    assert json.loads(done.stdout)["feature_names"] == list(CUSTOMER)


def test_a_corrupt_version_is_retrained_from_its_recipe(model_dir: Path, on_customers: str) -> None:
    truncate_artifact(model_dir, on_customers)
    client = admin_client(model_dir, ON_CORRUPT="retrain")
    res = client.post("/predict", json=CUSTOMER)
    assert res.status_code == 200, res.get_json()
    meta = client.get("/model").get_json()
    assert meta["version"] != on_customers and meta["feature_names"] == list(CUSTOMER)
    assert meta["params"]["max_depth"] == 3  # the same model rebuilt, its parameters too


def test_training_on_data_with_other_fields_is_refused_unless_asked(
    model_dir: Path, on_customers: str, tmp_path: Path
) -> None:
    client = admin_client(model_dir, DATA=str(survey_csv(tmp_path / "survey.csv")), TARGET="segment")
    res = client.post("/model/train", json={"params": {"max_depth": 2}}, headers=AUTH)
    assert res.status_code == 409
    body = res.get_json()
    assert "logins" in body["message"] and "visits" in body["message"] and on_customers in body["message"]
    assert {(e["field"], e["problem"]) for e in body["errors"]} == {
        ("logins", "added"),
        ("visits", "removed"),
        ("age", "moved"),
        ("income", "moved"),
    }
    assert client.get("/model").get_json()["version"] == on_customers  # nothing changed
    bad = client.post("/model/train", json={"allow_schema_change": "yes"}, headers=AUTH)
    assert bad.status_code == 400 and [e["field"] for e in bad.get_json()["errors"]] == ["allow_schema_change"]
    meant = client.post("/model/train", json={"allow_schema_change": True}, headers=AUTH)
    assert meant.status_code == 201
    assert meant.get_json()["feature_names"] == ["income", "age", "logins"]


def test_the_command_line_refuses_a_schema_change_unless_asked(
    model_dir: Path, on_customers: str, tmp_path: Path
) -> None:
    settings = {"MLDEPLOY_DATA": str(survey_csv(tmp_path / "survey.csv")), "MLDEPLOY_TARGET": "segment"}
    done = run_cli(model_dir, "train", **settings)
    assert done.returncode == exit_codes.EXIT_ERROR and done.stdout == ""
    assert "logins" in done.stderr and "visits" in done.stderr and "allow_schema_change" in done.stderr
    assert Modeler(model_dir).version == on_customers
    done = run_cli(model_dir, "train", "--allow-schema-change", **settings)
    assert done.returncode == exit_codes.EXIT_OK, done.stderr
    assert json.loads(done.stdout)["feature_names"] == ["income", "age", "logins"]


def test_ready_warns_while_the_settings_name_other_data(
    model_dir: Path, customers: Path, on_customers: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    other = customers_csv(tmp_path / "elsewhere" / "accounts.csv", seed=1)
    client = admin_client(model_dir, DATA=str(other), TARGET="segment")
    with caplog.at_level(logging.WARNING):
        first, again = client.get("/ready"), client.get("/ready")
    assert first.status_code == 200 and first.get_json()["ModelVersion"] == on_customers
    warning = first.get_json()["warning"]
    assert "accounts.csv" in warning and "customers.csv" in warning and on_customers in warning
    assert str(tmp_path) not in warning  # file names only: /ready is open to anyone
    assert again.get_json()["warning"] == warning
    lines = [r.getMessage() for r in caplog.records if warning in r.getMessage()]
    assert len(lines) == 1  # one line per load, not per request
    # Settings that say nothing about the data, or agree with the version, warn of nothing.
    assert "warning" not in admin_client(model_dir).get("/ready").get_json()
    agreeing = admin_client(model_dir, DATA=str(customers), TARGET="segment")
    assert "warning" not in agreeing.get("/ready").get_json()
    assert (
        "target 'species' instead of 'segment'"
        in admin_client(model_dir, DATA=str(customers)).get("/ready").get_json()["warning"]
    )


def test_a_server_started_with_other_data_logs_one_clear_line(
    model_dir: Path, on_customers: str, tmp_path: Path
) -> None:
    (tmp_path / "clone").mkdir()
    project = copy_project(tmp_path / "clone")
    other = customers_csv(tmp_path / "accounts.csv", seed=2)
    env = clean_env(MLDEPLOY_MODEL_DIR=str(model_dir), MLDEPLOY_DATA=str(other), MLDEPLOY_TARGET="segment")
    port, log = free_port(), tmp_path / "server.log"
    with running(["app.py", "--port", str(port)], project, port, env, log=log) as (base, _):
        wait_ready(base + "/ready")
        ready = requests.get(base + "/ready", timeout=10).json()
        for _ in range(3):
            assert requests.post(base + "/predict", json=CUSTOMER, timeout=10).status_code == 200
    assert ready["ModelVersion"] == on_customers and "accounts.csv" in ready["warning"]
    lines = [line for line in log.read_text().splitlines() if "disagree" in line]
    assert len(lines) == 1 and "accounts.csv" in lines[0] and on_customers in lines[0], lines


def test_old_metadata_without_a_recipe_loads_and_is_still_guarded(
    model_dir: Path, customers: Path, on_customers: str
) -> None:
    without_recipe(model_dir, on_customers)
    modeler = Modeler(model_dir)
    assert Recipe.from_metadata(modeler.metadata) is None
    assert modeler.predict(CUSTOMER) in SEGMENTS
    # Nothing to repeat: a bare retrain would be Iris, whose fields differ, so it is refused.
    with pytest.raises(SchemaChange, match="sepal_length"):
        modeler.fit()
    assert modeler.version == on_customers
    # With data given, the old version cannot tell whether it agrees: it says so.
    told = Modeler(model_dir, data=customers, target="segment")
    told.ensure_ready()
    assert "records no recipe" in told.settings_conflict()
    assert told.fit().metadata[RECIPE]["data"] == str(customers.resolve())


def test_a_retrain_of_a_corrupt_version_never_changes_the_fields(model_dir: Path, on_customers: str) -> None:
    without_recipe(model_dir, on_customers)  # nothing to repeat: the retrain would be Iris
    truncate_artifact(model_dir, on_customers)
    with pytest.raises(ModelNotReady, match="cannot train one: the training data's input fields differ"):
        Modeler(model_dir).predict(SEED_ROW)
    res = admin_client(model_dir).get("/ready")
    assert res.status_code == 503 and "input fields differ" in res.get_json()["message"]
