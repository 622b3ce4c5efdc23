"""The benchmark's own servers answer correctly, and its measuring helpers measure (no timings)."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO, SEED_ROW

sys.path.insert(0, str(REPO / "bench"))
run = importlib.import_module("run")


@pytest.fixture
def tutorial(tmp_path: Path, monkeypatch):
    """The baseline's tutorial modeler on a CSV of the test's own, with no saved model yet."""
    from modeler.data import iris_frame

    tutorial_modeler = importlib.import_module("tutorial_modeler")
    iris_frame().to_csv(tmp_path / "iris.csv", index=False)
    monkeypatch.setattr(tutorial_modeler, "DATA_CSV", tmp_path / "iris.csv")
    monkeypatch.setattr(tutorial_modeler, "MODEL_FILE", tmp_path / "model.joblib")
    return tutorial_modeler


def test_baseline_builds_a_modeler_per_request_and_answers_like_mldeploy(tutorial, monkeypatch) -> None:
    baseline = importlib.import_module("baseline_app")
    built = []
    monkeypatch.setattr(baseline, "TutorialModeler", lambda: built.append(1) or tutorial.TutorialModeler())
    client = baseline.app.test_client()
    one = client.post("/predict", json=SEED_ROW).get_json()
    assert one["Class"] == "setosa" and one["Input"] == SEED_ROW
    batch = client.post("/predict", json=[SEED_ROW, SEED_ROW]).get_json()
    assert [p["Class"] for p in batch["Predictions"]] == ["setosa", "setosa"]
    assert len(built) == 2 and tutorial.MODEL_FILE.exists()


def test_floor_answers_a_fixed_prediction() -> None:
    floor = importlib.import_module("floor_app")
    res = floor.app.test_client().post("/predict", json=SEED_ROW)
    assert res.get_json() == floor.ANSWER


def test_pss_counts_the_whole_process_tree() -> None:
    # A child that holds 64 MiB of touched memory: the tree's PSS must include it.
    code = "import sys, time; b = bytearray(64 << 20); b[::4096] = b'x' * (len(b) // 4096); print(); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        child.stdout.readline()  # the memory is touched
        assert child.pid in run.process_tree(os.getpid())
        assert run.pss_mib(child.pid) > 60
        assert run.pss_mib(os.getpid()) > run.pss_mib(child.pid) + 10  # pytest itself weighs more than 10 MiB
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


def test_batch_bodies_hold_the_same_rows_in_every_form(tmp_path: Path) -> None:
    import json

    files = run.bodies(tmp_path)
    records = json.loads(files["records-1000"].read_text())
    columnar = json.loads(files["columnar-1000"].read_text())
    assert len(records) == len(columnar["data"]) == 1000
    assert [list(r.values()) for r in records] == columnar["data"]
    assert json.loads(files["instances-1000"].read_text())["instances"] == records
