"""The new user's demo, run as a user runs it: real processes in a fresh copy of the code.

For each of the three models in ``examples/`` (the tutorial's forest, a Pipeline with a text column,
a regressor with missing values): the example script trains and saves the model with joblib, then
``python -m mldeploy import`` adopts it (with ``--sample`` where the example writes one), ``python
-m mldeploy serve`` (gunicorn) serves it on a free port, and a client asks it: the tutorial's own
client posting ``{"features": [...]}``, plain ``requests``, and ``mldeploy_client``. Each answer is
compared with the saved model's own ``predict`` / ``predict_proba`` on the same rows.
"""

from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import requests

from mldeploy_client import Client
from tests.support import REPO, clean_env, copy_project, free_port, running, wait_ready

TIMEOUT = 300


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh clone: the code, the examples, an empty models/."""
    dest = copy_project(tmp_path_factory.mktemp("demo"))
    shutil.copytree(REPO / "examples", dest / "examples")
    return dest


def run(project: Path, *args: str, models: str) -> subprocess.CompletedProcess:
    """``python *args`` in the clone, as a user's shell runs it, on the model directory ``models``."""
    done = subprocess.run(
        [sys.executable, *args],
        cwd=project,
        env=clean_env(MLDEPLOY_MODEL_DIR=str(project / models)),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
    return done


def serve(project: Path, models: str):
    """``python -m mldeploy serve`` (gunicorn) on a free port, on ``models``."""
    port = free_port()
    env = clean_env(MLDEPLOY_MODEL_DIR=str(project / models))
    args = ["-m", "mldeploy", "serve", "--port", str(port), "--workers", "2"]
    return running(args, project, port, env=env, log=project / f"{models}.log")


def test_the_tutorials_forest_imported_and_served_answers_the_tutorials_client(project: Path) -> None:
    run(project, "examples/tutorial_forest.py", models="forest")
    imported = json.loads(run(project, "-m", "mldeploy", "import", "model.pkl", models="forest").stdout)
    assert (imported["estimator"], imported["predictor"], imported["source"]) == (
        "RandomForestClassifier",
        "ensemble",
        "imported",
    )
    assert imported["schema"]["positional"] is True and imported["classes"] == [0, 1]
    model = joblib.load(project / "model.pkl")  # the test's own file: it knows what it wrote
    with serve(project, "forest") as (base, _):
        wait_ready(base + "/ready")
        said = run(project, "examples/tutorial_client.py", base + "/predict", models="forest").stdout.splitlines()
        assert said[0] == "200"
        answer = ast.literal_eval(said[1])  # the client prints the dict as Python writes it
        features = [0.5, 1.2, -0.3, 0.8, -1.5]
        assert answer["Class"] == int(model.predict([features])[0])
        expected = model.predict_proba([features])[0]
        assert answer["Probabilities"] == {"0": expected[0], "1": expected[1]}

        Q = np.random.default_rng(5).normal(size=(1000, 5))
        batch = requests.post(base + "/predict", json={"instances": Q.tolist()}, timeout=60).json()
        assert [p["Class"] for p in batch["Predictions"]] == model.predict(Q).tolist()
        got = np.array([[p["Probabilities"]["0"], p["Probabilities"]["1"]] for p in batch["Predictions"]])
        np.testing.assert_array_equal(got, model.predict_proba(Q))


def test_a_pipeline_with_a_text_column_imported_with_a_sample(project: Path) -> None:
    run(project, "examples/text_pipeline.py", models="pipeline")
    imported = json.loads(
        run(
            project, "-m", "mldeploy", "import", "pipeline.pkl", "--sample", "pipeline-sample.csv", models="pipeline"
        ).stdout
    )
    types = {f["name"]: f["type"] for f in imported["schema"]["fields"]}
    assert types == {"plan": "text", "monthly_spend": "number", "tenure_months": "integer"}
    model = joblib.load(project / "pipeline.pkl")
    rows = pd.read_csv(project / "pipeline-sample.csv").head(300)
    with serve(project, "pipeline") as (base, _), Client(base) as client:
        client.wait_until_ready()
        one = client.predict({"plan": "pro", "monthly_spend": 42.0, "tenure_months": 18})
        assert one["Class"] == model.predict(pd.DataFrame([one["Input"]]))[0]
        scored = client.predict_many(rows, chunk_size=100)
        assert scored["Class"].tolist() == model.predict(rows).tolist()
        np.testing.assert_array_equal(scored[["no", "yes"]].to_numpy(), model.predict_proba(rows))
        gold = client.predict({"plan": "gold", "monthly_spend": 42.0, "tenure_months": 18})
        assert gold["Warnings"][0]["field"] == "plan"
        page = requests.get(base + "/openapi.json", timeout=30).json()
        assert page["components"]["schemas"]["Row"]["properties"]["plan"]["type"] == "string"


def test_a_regressor_with_missing_values_answers_prediction_and_takes_null(project: Path) -> None:
    run(project, "examples/regressor_missing.py", models="regressor")
    imported = json.loads(
        run(
            project,
            "-m",
            "mldeploy",
            "import",
            "regressor.pkl",
            "--sample",
            "regressor-sample.csv",
            models="regressor",
        ).stdout
    )
    assert imported["task"] == "regression" and all(f["nullable"] for f in imported["schema"]["fields"])
    model = joblib.load(project / "regressor.pkl")
    rows = pd.read_csv(project / "regressor-sample.csv").head(400)
    with serve(project, "regressor") as (base, _), Client(base) as client:
        client.wait_until_ready()
        one = requests.post(base + "/predict", json={"rooms": 3, "area": None, "age": 12.5}, timeout=30).json()
        assert list(one) == ["Prediction", "Input", "ModelVersion"]
        assert one["Prediction"] == model.predict(pd.DataFrame([{"rooms": 3.0, "area": np.nan, "age": 12.5}]))[0]
        body = json.loads(rows.to_json(orient="records"))  # NaN sent as null
        answer = requests.post(base + "/predict", json=body, timeout=60).json()
        np.testing.assert_array_equal([p["Prediction"] for p in answer["Predictions"]], model.predict(rows))
        scored = client.predict_many(body, chunk_size=100)
        assert [a["Prediction"] for a in scored] == [p["Prediction"] for p in answer["Predictions"]]
        full = client.predict_many(rows.dropna())
        assert list(full.columns) == ["Prediction", "ModelVersion"]
        np.testing.assert_array_equal(full["Prediction"].to_numpy(), model.predict(rows.dropna()))
