"""Drift: each version's training reference (modeler/reference.py), ``GET /model/drift`` and the
drift gauges of ``/metrics``, in process and through ``python -m mldeploy serve --workers 2``.

The figures are checked against the test's own computation: its own binning of the values it
sent (pandas, right-closed intervals), the PSI formula written out, and scipy's two-sample tests.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from scipy.stats import chi2_contingency, ks_2samp

from mldeploy.http.app import EXTENSION, create_app
from mldeploy.http.request_context import REQUEST_ID_HEADER
from mldeploy.monitoring import recording
from mldeploy.monitoring.drift import EPSILON, category_drift, number_drift, psi, verdict
from modeler.data import load_training_data
from modeler.estimators import DEFAULT_ESTIMATOR, build
from modeler.modeler import Modeler
from modeler.reference import REFERENCE, SAMPLE_SIZE, reference_of
from modeler.store import METADATA_FILE, VERSIONS_DIR
from modeler.training import fit_with_holdout
from tests.support import REPO, clean_env, free_port, metric_value, running, wait_ready

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
# What a drifted batch does: petals two centimetres longer than any flower in training.
SHIFT = {"petal_length": 2.0}


def own_psi(edges: list[float], ref_counts: list[int], values: list[float]) -> float:
    """PSI of ``values`` over the reference's bins, binned by pandas (right-closed), written out."""
    bins = pd.cut(pd.Series(values, dtype=float), [-np.inf, *edges, np.inf], right=True, labels=False)
    live = np.bincount(bins.to_numpy(dtype=int), minlength=len(edges) + 1) / len(values)
    ref = np.asarray(ref_counts, dtype=float) / sum(ref_counts)
    live, ref = np.maximum(live, EPSILON), np.maximum(ref, EPSILON)
    return float(sum((q - p) * math.log(q / p) for p, q in zip(ref, live, strict=True)))


def iris_rows(count: int, seed: int, shift: dict[str, float] | None = None) -> list[dict[str, float]]:
    """``count`` Iris rows drawn with replacement, ``shift`` added to some features."""
    X, _ = load_training_data(None, "species")
    rows = X.sample(count, replace=True, random_state=seed).to_dict("records")
    return [{k: round(float(v) + (shift or {}).get(k, 0.0), 6) for k, v in row.items()} for row in rows]


# ---- the reference -------------------------------------------------------------------------------


def test_a_trained_version_keeps_its_training_deciles_sample_and_predictions(trained: Modeler) -> None:
    reference = trained.metadata[REFERENCE]
    X, y = load_training_data(None, "species")
    made = build(DEFAULT_ESTIMATOR, {}, trained.random_state)
    estimator, _, X_train = fit_with_holdout(made, X, y, trained.random_state)  # the same split and fit
    assert reference["rows"] == len(X_train) == 120
    for name in FEATURES:
        entry = reference["features"][name]
        values = np.sort(X_train[name].to_numpy(dtype=float))
        assert entry["kind"] == "number" and entry["missing"] == 0
        assert entry["edges"] == pytest.approx(np.unique(np.quantile(values, np.arange(1, 10) / 10)).tolist())
        assert entry["sample"] == values.tolist()  # under SAMPLE_SIZE rows: the training values themselves
        assert sum(entry["counts"]) == 120 and len(entry["counts"]) == len(entry["edges"]) + 1
    answered = pd.Series(estimator.predict(X_train)).value_counts()
    prediction = reference["prediction"]
    assert prediction["kind"] == "category"
    assert dict(zip(prediction["categories"], prediction["counts"], strict=True)) == answered.to_dict()


def test_a_large_training_set_keeps_a_seeded_sample_and_categories_by_type() -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "size": rng.normal(10, 2, 5000),
            "colour": rng.choice(["red", "green", "blue"], 5000, p=[0.5, 0.3, 0.2]),
            "flag": rng.choice([True, False], 5000),
        }
    )
    frame.loc[:9, "size"] = np.nan
    fields = [
        {"name": "size", "type": "number"},
        {"name": "colour", "type": "text"},
        {"name": "flag", "type": "boolean"},
    ]
    reference = reference_of(frame, rng.normal(size=5000), fields, task="regression")
    size = reference["features"]["size"]
    assert (size["rows"], size["missing"], len(size["sample"])) == (4990, 10, SAMPLE_SIZE)
    assert size["sample"] == sorted(size["sample"]) and set(size["sample"]) <= set(frame["size"].dropna())
    assert reference_of(frame, rng.normal(size=5000), fields, task="regression")["features"]["size"] == size
    colour = reference["features"]["colour"]
    assert colour["kind"] == "category" and colour["categories"][0] == "red"
    assert dict(zip(colour["categories"], colour["counts"], strict=True)) == frame["colour"].value_counts().to_dict()
    assert set(reference["features"]["flag"]["categories"]) == {True, False}  # booleans stay booleans
    assert reference["prediction"]["kind"] == "number"
    json.dumps(reference)  # plain JSON, for metadata.json


# ---- the figures ---------------------------------------------------------------------------------


def test_verdicts_follow_the_stated_thresholds() -> None:
    assert [verdict(v) for v in (0.0, 0.0999, 0.1, 0.2499, 0.25, 3.0)] == [
        "stable",
        "stable",
        "moderate",
        "moderate",
        "major",
        "major",
    ]
    assert psi([50, 50], [50, 50]) == 0.0
    assert psi([50, 50], [90, 10]) == pytest.approx(0.4 * math.log(0.9 / 0.5) - 0.4 * math.log(0.1 / 0.5))


def test_number_drift_matches_own_binning_and_scipys_ks(trained: Modeler) -> None:
    entry = trained.metadata[REFERENCE]["features"]["petal_length"]
    for shift, expected in ((0.0, "stable"), (2.0, "major")):
        values = [row["petal_length"] for row in iris_rows(400, seed=7, shift={"petal_length": shift})]
        figures = number_drift(entry, values)
        assert figures["psi"] == pytest.approx(own_psi(entry["edges"], entry["counts"], values))
        assert figures["p_value"] == pytest.approx(ks_2samp(entry["sample"], values).pvalue)
        assert figures["verdict"] == expected and figures["rows"] == 400
    with_missing = number_drift(entry, [1.4, None, 5.1, None])
    assert (with_missing["missing"], with_missing["rows"]) == (2, 4)


def test_category_drift_matches_scipys_chi_squared() -> None:
    frame = pd.DataFrame({"colour": ["red"] * 60 + ["green"] * 30 + ["blue"] * 10})
    entry = reference_of(frame, ["a"] * 100, [{"name": "colour", "type": "text"}])["features"]["colour"]
    live = ["red"] * 20 + ["green"] * 20 + ["blue"] * 5 + ["purple"] * 5  # purple: never seen in training
    figures = category_drift(entry, live)
    ref_counts, live_counts = [60, 30, 10, 0], [20, 20, 5, 5]  # red, green, blue, unseen
    assert figures["unseen"] == 5 and figures["test"] == "chi2_contingency"
    assert figures["p_value"] == pytest.approx(chi2_contingency(np.array([ref_counts, live_counts])).pvalue)
    ref, ours = np.maximum(np.array(ref_counts) / 100, EPSILON), np.maximum(np.array(live_counts) / 50, EPSILON)
    assert figures["psi"] == pytest.approx(float(np.sum((ours - ref) * np.log(ours / ref))))
    same = category_drift(entry, (["red"] * 6 + ["green"] * 3 + ["blue"]) * 10)
    assert (same["psi"], same["verdict"], same["unseen"]) == (0.0, "stable", 0)


# ---- GET /model/drift and the gauges, in process ------------------------------------------------------


@pytest.fixture
def app(model_dir: Path) -> Flask:
    app = create_app({"TESTING": True, "MODEL_DIR": str(model_dir), "WARMUP": False})
    assert app.extensions[EXTENSION].warm_up()
    return app


def predict_and_flush(app: Flask, client: FlaskClient, rows: list[dict]) -> None:
    assert client.post("/predict", json=rows).status_code == 200
    assert recording.prediction_log_of(app).flush(30)


def test_drift_of_logged_predictions_and_the_same_figures_in_metrics(app: Flask, client: FlaskClient) -> None:
    reference = app.extensions[EXTENSION].modeler.metadata[REFERENCE]
    empty = client.get("/model/drift").get_json()
    assert empty["rows"] == 0 and empty["features"]["petal_length"]["verdict"] is None

    normal = iris_rows(300, seed=1)
    predict_and_flush(app, client, normal)
    answer = client.get("/model/drift").get_json()
    assert answer["rows"] == 300 and set(answer["features"]) == set(FEATURES)
    entry = reference["features"]["petal_length"]
    values = [r["petal_length"] for r in normal]
    assert answer["features"]["petal_length"]["psi"] == pytest.approx(own_psi(entry["edges"], entry["counts"], values))
    assert all(f["verdict"] == "stable" for f in answer["features"].values()), answer["features"]

    shifted = iris_rows(300, seed=2, shift=SHIFT)
    predict_and_flush(app, client, shifted)
    recent = client.get("/model/drift?window=300").get_json()  # the shifted batch alone
    assert recent["features"]["petal_length"]["verdict"] == "major"
    assert recent["features"]["petal_length"]["p_value"] < 1e-6
    assert recent["features"]["sepal_width"]["verdict"] == "stable"
    assert recent["prediction"]["verdict"] in ("moderate", "major")  # longer petals: fewer setosa

    text = client.get("/metrics").get_data(as_text=True)
    version = recent["version"]
    default = client.get("/model/drift").get_json()  # the gauges' window: MLDEPLOY_MONITORING_WINDOW rows
    for name in FEATURES:
        labels = {"version": version, "feature": name}
        assert metric_value(text, "mldeploy_drift_psi", **labels) == pytest.approx(default["features"][name]["psi"])
        level = ("stable", "moderate", "major").index(default["features"][name]["verdict"])
        assert metric_value(text, "mldeploy_drift_verdict", **labels) == level
    assert metric_value(text, "mldeploy_drift_window_rows", version=version) == 600


def test_drift_and_performance_right_after_a_prediction_include_it(model_dir: Path) -> None:
    """A user who sends a batch, then asks for drift or posts its labels and asks for accuracy,
    sees that batch: these reads first write what this process has queued (the writer would
    otherwise hold it for the whole flush interval, 30 s here)."""
    app = create_app({"TESTING": True, "MODEL_DIR": str(model_dir), "WARMUP": False, "LOG_FLUSH_INTERVAL": 30})
    assert app.extensions[EXTENSION].warm_up()
    client = app.test_client()
    res = client.post("/predict", json=iris_rows(300, seed=2, shift=SHIFT))
    assert res.status_code == 200
    drift = client.get("/model/drift?window=300").get_json()
    assert drift["rows"] == 300 and drift["features"]["petal_length"]["verdict"] == "major"
    rows = iris_rows(20, seed=3)
    res = client.post("/predict", json=rows)
    labels = [
        {"request_id": res.headers["X-Request-ID"], "row": i, "actual": p["Class"]}
        for i, p in enumerate(res.get_json()["Predictions"])
    ]
    assert client.post("/feedback", json=labels).status_code == 200
    performance = client.get("/model/performance?window=20").get_json()
    assert performance["labelled"] == 20 and performance["accuracy"] == 1.0


def test_a_version_without_a_reference_is_a_409(app: Flask, client: FlaskClient, model_dir: Path) -> None:
    modeler = app.extensions[EXTENSION].modeler
    old = modeler.version
    path = model_dir / VERSIONS_DIR / old / METADATA_FILE
    metadata = json.loads(path.read_text())
    del metadata[REFERENCE]  # as a version saved before references were recorded
    path.write_text(json.dumps(metadata))
    modeler.fit()
    res = client.get(f"/model/drift?version={old}")
    assert res.status_code == 409
    assert old in res.get_json()["message"] and "no training reference" in res.get_json()["message"]
    assert client.get("/model/drift").status_code == 200  # the new version has one


def test_with_the_log_off_monitoring_routes_say_so(model_dir: Path) -> None:
    app = create_app({"TESTING": True, "MODEL_DIR": str(model_dir), "WARMUP": False, "LOG_PREDICTIONS": False})
    client = app.test_client()
    for res in (
        client.get("/model/drift"),
        client.get("/model/performance"),
        client.post("/feedback", json={"request_id": "x", "actual": "setosa"}),
    ):
        assert res.status_code == 409
        assert "MLDEPLOY_LOG_PREDICTIONS" in res.get_json()["message"]


# ---- through two gunicorn workers ------------------------------------------------------------------

WORKERS = 2


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``python -m mldeploy serve --workers 2`` on a fresh model directory; yields (base URL, log)."""
    root = tmp_path_factory.mktemp("served")
    (root / "models").mkdir()
    port = free_port()
    log = root / "server.log"
    env = clean_env(MLDEPLOY_MODEL_DIR=str(root / "models"))
    with running(
        ["-m", "mldeploy", "serve", "--workers", str(WORKERS), "--port", str(port)], REPO, port, env=env, log=log
    ) as (
        base,
        _,
    ):
        wait_ready(base + "/ready")
        yield base, log


def test_drift_through_two_workers_is_computed_from_the_shared_log(served: tuple[str, Path]) -> None:
    base, log = served
    normal, shifted = iris_rows(120, seed=11), iris_rows(80, seed=12, shift=SHIFT)
    # Single rows and small batches, a new connection each, from 8 threads: both workers take a share.
    bodies = [[row] for row in normal] + [shifted[i : i + 4] for i in range(0, len(shifted), 4)]
    ids = [f"drift-{uuid.uuid4().hex[:12]}" for _ in bodies]

    def send(pair: tuple[str, list[dict]]) -> int:
        rid, body = pair
        return requests.post(f"{base}/predict", json=body, headers={REQUEST_ID_HEADER: rid}, timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(send, zip(ids, bodies, strict=True))) == {200}
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    assert len({line["pid"] for line in lines if line.get("request_id") in set(ids)}) == WORKERS

    reference = requests.get(f"{base}/model", timeout=10).json()[REFERENCE]
    sent = normal + shifted
    # Each worker writes its own rows within its flush interval; ask until all are there.
    answers = []
    deadline = time.monotonic() + 60
    while len(answers) < 6 and time.monotonic() < deadline:  # several answers, from either worker
        answer = requests.get(f"{base}/model/drift", timeout=30).json()
        if answer["rows"] == len(sent):
            answers.append(answer)
        else:  # a writer flushes once a second: give it the time (a quick answer can come first)
            time.sleep(0.1)
    assert len(answers) == 6, answers[-1:] or "the log never held every row"
    for answer in answers:
        assert answer == answers[0]
    figures = answers[0]["features"]
    for name in FEATURES:
        entry = reference["features"][name]
        values = [row[name] for row in sent]
        assert figures[name]["psi"] == pytest.approx(own_psi(entry["edges"], entry["counts"], values)), name
        assert figures[name]["p_value"] == pytest.approx(ks_2samp(entry["sample"], values).pvalue), name
        assert figures[name]["verdict"] == verdict(figures[name]["psi"])
    assert figures["petal_length"]["verdict"] == "major"

    # /metrics, whichever worker answers, carries the same figures.
    version = answers[0]["version"]
    for _ in range(4):
        text = requests.get(f"{base}/metrics", timeout=30).text
        for name in FEATURES:
            psi_gauge = metric_value(text, "mldeploy_drift_psi", version=version, feature=name)
            assert psi_gauge == pytest.approx(figures[name]["psi"]), name
