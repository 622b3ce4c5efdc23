"""Real processes: ``python app.py`` in a copy of the code with an empty models folder, and the
notebook executed by ``jupyter nbconvert`` against it, as a user runs it."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import nbformat
import requests

from modeler.store import VERSIONS_DIR
from tests.support import REPO, SEED_ROW, clean_env, copy_project, free_port, running

NOTEBOOK = REPO / "notebooks" / "client.ipynb"


def test_seed_client_gets_setosa_and_the_model_is_saved_in_the_copy(live) -> None:
    base, project = live
    res = requests.post(
        f"{base}/predict",
        json={"sepal_length": 5.0, "sepal_width": 3.2, "petal_length": 1.5, "petal_width": 0.3},
        timeout=30,
    )
    assert res.json()["Class"] == "setosa"
    versions = list((project / "models" / VERSIONS_DIR).iterdir())
    assert [v.name for v in versions] == [res.json()["ModelVersion"]]


def test_live_errors_are_json(live) -> None:
    base, _ = live
    bad = requests.post(f"{base}/predict", json={**SEED_ROW, "petal_width": None}, timeout=10)
    assert bad.status_code == 400
    assert bad.json()["errors"] == [{"row": 0, "field": "petal_width", "problem": "null"}]
    missing = requests.get(f"{base}/nowhere", timeout=10)
    assert missing.status_code == 404 and missing.headers["Content-Type"] == "application/json"
    assert requests.get(f"{base}/ready", timeout=10).status_code == 200


def test_ready_turns_200_without_any_prediction(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    port = free_port()
    env = clean_env(MLDEPLOY_PORT=str(port), MLDEPLOY_MODEL_DIR=str(tmp_path / "elsewhere"))
    with running(["app.py"], project, port, env=env) as (base, _):
        # Training in the background imports scikit-learn first: poll by time, not by count.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and requests.get(f"{base}/ready", timeout=10).status_code != 200:
            time.sleep(0.05)
        assert requests.get(f"{base}/ready", timeout=10).json()["status"] == "ready"
    assert list((tmp_path / "elsewhere" / VERSIONS_DIR).iterdir())
    assert not list((project / "models").iterdir())


def test_help_lists_host_and_port() -> None:
    out = subprocess.run([sys.executable, "app.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "--host" in out.stdout and "--port" in out.stdout


def test_notebook_runs_as_jupyter_runs_it_against_the_live_server(live, tmp_path: Path) -> None:
    """The README's command, ``jupyter nbconvert --to notebook --execute``, from the repository's
    root: the kernel starts in notebooks/, as Jupyter starts it, and finds ``mldeploy_client``
    only because the project is installed (``make``: ``pip install --no-deps -e .``). Nothing puts
    the repository on the kernel's path: no PYTHONPATH, no working directory of ours."""
    base, _ = live
    env = clean_env(MLDEPLOY_URL=base)  # the notebook's own way to find the server
    env.pop("PYTHONPATH", None)
    command = [sys.executable, "-m", "jupyter", "nbconvert", "--to", "notebook", "--execute"]
    command += [str(NOTEBOOK.relative_to(REPO)), "--output-dir", str(tmp_path), "--output", NOTEBOOK.stem]
    command += ["--ExecutePreprocessor.timeout=120"]
    run = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    # Without requirements-notebook.txt there is no nbconvert; without the project, no mldeploy_client.
    hint = "are requirements-notebook.txt and the project installed? `make .venv/.dev` does both"
    assert run.returncode == 0, f"the notebook failed ({hint}):\n{run.stderr[-4000:]}"
    notebook = nbformat.read(tmp_path / NOTEBOOK.name, as_version=4)
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "setosa" in text and "model version" in text and "400" in text
    # The mldeploy_client.client cells: its typed error carries the server's field errors.
    assert "400 -> row 0 'sepal_width': not a number" in text
    assert any("image/png" in o.get("data", {}) for o in outputs), "the bar chart was not drawn"
    # Watching the model: the shifted rounds drift (petal_length major) after the plain ones.
    assert "petal_length drift by round: stable, stable, stable, major, major, major" in text
