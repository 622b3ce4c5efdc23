"""The prediction log as the service writes it: what ``/predict`` and ``/v2`` answered, under
``python app.py`` and gunicorn, in SQLite (the default) and PostgreSQL.

Shown here: each answered row is logged once with its request id, row, model, version, inputs
and outputs (what the client was sent), and nothing that was not answered; sampling and the off
switch; retention; the counters on /metrics; an unreachable database never fails a prediction
(the log line says why, the dropped counter counts); ``Modeler(prediction_log=...)`` in a script.
The SIGTERM-under-load drain is tests/test_prediction_log_shutdown.py.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from pathlib import Path

import pytest
import requests

from mldeploy.contract import CLASS, INPUT, MODEL_VERSION, PREDICTIONS, PROBABILITIES
from mldeploy.http.app import create_app
from mldeploy.monitoring import PredictionLog, open_store, sampled
from mldeploy.monitoring.packing import pack_json
from mldeploy.monitoring.recording import prediction_log_of
from mldeploy.monitoring.store import DEFAULT_FILE
from modeler.modeler import Modeler
from tests.support import GUNICORN_CONF, REPO, SEED_ROW, clean_env, free_port, metric_value, running
from tests.test_prediction_log import logged

pytest_plugins = ["tests.postgres"]

V2_BODY = {
    "inputs": [{"name": "x", "datatype": "FP64", "shape": [2, 4], "data": [5.0, 3.2, 1.5, 0.3, 6.9, 3.1, 5.4, 2.1]}]
}
BATCH = [SEED_ROW, {"sepal_length": 6.9, "sepal_width": 3.1, "petal_length": 5.4, "petal_width": 2.1}]
# The writer asleep: rows reach the database only through the drain at the process's exit.
ASLEEP = {"MLDEPLOY_LOG_FLUSH_INTERVAL": "600", "MLDEPLOY_LOG_BATCH_SIZE": "1000000000"}


def outputs_of(prediction: dict) -> dict:
    """What the log keeps of one answered row: the model's answer, without echo or version."""
    return {k: v for k, v in prediction.items() if k in (CLASS, PROBABILITIES)}


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.fixture
def trained_dir(tmp_path: Path) -> Path:
    """A model directory with one saved version (servers load it, never train)."""
    path = tmp_path / "models"
    Modeler(path).fit()
    return path


def test_python_app_py_logs_what_it_answered_and_drains_on_sigterm(trained_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(MLDEPLOY_MODEL_DIR=str(trained_dir), **ASLEEP)
    with running(["app.py", "--port", str(port)], REPO, port, env=env, log=tmp_path / "server.log") as (base, proc):
        answers = {}
        for request_id, path, body in (
            ("single-1", "/predict", SEED_ROW),
            ("batch-1", "/predict", BATCH),
            ("v2-1", "/v2/models/iris/infer", V2_BODY),
            ("explained-1", "/predict?explain=true", SEED_ROW),
        ):
            res = requests.post(base + path, json=body, headers={"X-Request-ID": request_id}, timeout=10)
            assert res.status_code == 200, res.text
            answers[request_id] = res.json()
        for request_id, path, body in (  # not answered: not logged
            ("bad-1", "/predict", {**SEED_ROW, "petal_width": "wide"}),
            ("bad-v2", "/v2/models/iris/versions/nope/infer", V2_BODY),
        ):
            res = requests.post(base + path, json=body, headers={"X-Request-ID": request_id}, timeout=10)
            assert res.status_code in (400, 404), res.text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, (tmp_path / "server.log").read_text()[-2000:]
    records = logged(str(trained_dir / DEFAULT_FILE))
    assert sorted({r.request_id for r in records}) == ["batch-1", "explained-1", "single-1", "v2-1"]
    by_key = {(r.request_id, r.row): r for r in records}
    version = answers["single-1"][MODEL_VERSION]
    assert {(r.model, r.version) for r in records} == {("iris", version)}
    single = by_key["single-1", 0]
    assert single.inputs == SEED_ROW == answers["single-1"][INPUT]
    assert single.outputs == outputs_of(answers["single-1"])
    assert by_key["explained-1", 0].outputs == single.outputs  # the explanation is not logged
    for i, row in enumerate(BATCH):
        assert by_key["batch-1", i].inputs == row
        assert by_key["batch-1", i].outputs == outputs_of(answers["batch-1"][PREDICTIONS][i])
        # /v2 rows are logged in the same shape as /predict's: the log does not depend on the route.
        assert by_key["v2-1", i].inputs == row and by_key["v2-1", i].outputs == by_key["batch-1", i].outputs
    assert len(records) == 6


def test_sampling_keeps_the_requests_its_ids_choose_and_off_keeps_none(model_dir: Path) -> None:
    app = create_app({"MODEL_DIR": str(model_dir), "WARMUP": False, "LOG_SAMPLE_RATE": 0.3})
    client = app.test_client()
    ids = [f"req-{i}" for i in range(300)]
    for request_id in ids:
        assert client.post("/predict", json=BATCH, headers={"X-Request-ID": request_id}).status_code == 200
    log = prediction_log_of(app)
    assert log.flush(30)
    found = {r.request_id for r in logged(log.database)}
    assert found == {i for i in ids if sampled(i, 0.3)} and 0 < len(found) < len(ids)
    assert log.dropped == 0

    off = create_app({"MODEL_DIR": str(model_dir), "WARMUP": False, "LOG_PREDICTIONS": False})
    before = (model_dir / DEFAULT_FILE).stat().st_mtime_ns
    assert off.test_client().post("/predict", json=SEED_ROW).status_code == 200
    assert prediction_log_of(off) is None
    assert (model_dir / DEFAULT_FILE).stat().st_mtime_ns == before


def test_retention_and_the_counters_on_a_live_server(trained_dir: Path, tmp_path: Path) -> None:
    database = trained_dir / DEFAULT_FILE
    store = open_store(database)
    now = time.time()
    rows, answer = pack_json([SEED_ROW]), pack_json([{CLASS: "setosa"}])
    store.insert([(f"old-{i}", "iris", "v0", now - 7200, 1, rows, answer) for i in range(10)])
    store.insert([(f"recent-{i}", "iris", "v0", now - 60 + i, 1, rows, answer) for i in range(10)])
    store.close()
    port = free_port()
    env = clean_env(MLDEPLOY_MODEL_DIR=str(trained_dir), MLDEPLOY_LOG_MAX_AGE="1h", MLDEPLOY_LOG_MAX_ROWS="5")
    with running(["app.py", "--port", str(port)], REPO, port, env=env, log=tmp_path / "server.log") as (base, _):
        res = requests.post(base + "/predict", json=SEED_ROW, headers={"X-Request-ID": "new-1"}, timeout=10)
        assert res.status_code == 200
        # The writer prunes right after its first batch: by age, then down to the newest 5 rows.
        wait_for(
            lambda: [r.request_id for r in logged(str(database))] == [*(f"recent-{i}" for i in range(6, 10)), "new-1"]
        )
        metrics = requests.get(base + "/metrics", timeout=10).text
    assert metric_value(metrics, "mldeploy_prediction_log_rows_total") == 1
    assert metric_value(metrics, "mldeploy_prediction_log_dropped_total", reason="queue_full") == 0


def test_an_unreachable_database_never_fails_a_prediction(trained_dir: Path, tmp_path: Path) -> None:
    closed_port = free_port()
    database = f"postgresql://postgres:secret-pw@127.0.0.1:{closed_port}/predictions"
    port = free_port()
    server_log = tmp_path / "server.log"
    env = clean_env(
        MLDEPLOY_MODEL_DIR=str(trained_dir),
        MLDEPLOY_LOG_DATABASE=database,
        MLDEPLOY_LOG_QUEUE_SIZE="3",  # a small queue, so that drops show within a few requests
        MLDEPLOY_LOG_FLUSH_INTERVAL="0.05",
        MLDEPLOY_LOG_CLOSE_TIMEOUT="1",
    )
    args = ["-m", "gunicorn", "--config", GUNICORN_CONF, "--workers", "2", "--bind", f"127.0.0.1:{port}"]
    with running(args, REPO, port, env=env, log=server_log) as (base, proc):
        sent = 40
        for i in range(sent):
            res = requests.post(base + "/predict", json=SEED_ROW, headers={"X-Request-ID": f"r-{i}"}, timeout=10)
            assert res.status_code == 200 and res.json()[CLASS] == "setosa"

        def outage_lines() -> list[dict]:
            lines = [json.loads(line) for line in server_log.read_text().splitlines() if line.startswith("{")]
            return [line for line in lines if "database unavailable" in line["message"]]

        wait_for(outage_lines)
        metrics = requests.get(base + "/metrics", timeout=10).text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    line = outage_lines()[0]
    assert f"127.0.0.1:{closed_port}" in line["message"] and "predictions go on" in line["message"]
    assert "secret-pw" not in server_log.read_text()
    dropped = metric_value(metrics, "mldeploy_prediction_log_dropped_total", reason="queue_full")
    # Each of the 2 workers keeps at most 3 rows queued and 3 in its writer's hands (waiting for
    # the database); the rest is dropped and counted.
    assert sent - 2 * 2 * 3 <= dropped <= sent, metrics
    assert metric_value(metrics, "mldeploy_prediction_log_rows_total") == 0


def test_a_modeler_in_a_script_logs_when_asked(trained_dir: Path, tmp_path: Path, log_database: str) -> None:
    log = PredictionLog(log_database, model="iris-script")
    modeler = Modeler(trained_dir, prediction_log=log)
    result = modeler.infer(BATCH, request_id="script-1")
    assert modeler.predict(SEED_ROW) == "setosa"  # logged too, under an id of its own
    assert log.close(30)
    records = logged(log_database)
    assert [(r.request_id, r.row) for r in records[:2]] == [("script-1", 0), ("script-1", 1)]
    assert [r.inputs for r in records[:2]] == BATCH
    assert [r.outputs[CLASS] for r in records[:2]] == result.labels
    assert len(records) == 3 and records[2].request_id != "script-1" and records[2].inputs == SEED_ROW
    assert {r.model for r in records} == {"iris-script"} and {r.version for r in records} == {result.version}
    with pytest.raises(TypeError, match="record_inference"):
        Modeler(trained_dir, prediction_log=object())
    # The server logs each answer under its request id itself: a Modeler logging on its own would double it.
    with pytest.raises(ValueError, match="prediction_log"):
        create_app({"MODEL_DIR": str(trained_dir)}, modeler=modeler)


def test_store_reads_by_request_window_and_version(log_database: str) -> None:
    log = PredictionLog(log_database)
    rows = [{**SEED_ROW, "sepal_length": 4.0 + i / 10} for i in range(5)]
    for i, version in enumerate(("v1", "v1", "v2")):
        log.record(f"req-{i}", version, rows[: i + 2], [{CLASS: f"c{i}"}] * (i + 2))
        log.flush(30)
        time.sleep(0.01)  # distinct times: the window's order is the answers' order
    assert log.close(30)
    store = open_store(log_database, create=False)
    try:
        assert [(r.row, r.inputs) for r in store.request_rows("req-1")] == list(enumerate(rows[:3]))
        assert [r.outputs for r in store.request_rows("req-2", row=3)] == [{CLASS: "c2"}]
        assert store.request_rows("never-sent") == []
        last = store.latest(5)
        assert [(r.request_id, r.row) for r in last] == [("req-1", 2), *(("req-2", i) for i in range(4))]
        assert [(r.request_id, r.row) for r in store.latest(4, version="v1")] == [
            ("req-0", 1),
            *(("req-1", i) for i in range(3)),
        ]
        assert store.latest(0) == [] and len(store.latest(100)) == store.count() == 9
    finally:
        store.close()


def test_a_request_id_sent_twice_is_logged_once(model_dir: Path) -> None:
    app = create_app({"MODEL_DIR": str(model_dir), "WARMUP": False})
    client = app.test_client()
    request_id = uuid.uuid4().hex
    for body in (BATCH, SEED_ROW):  # a client's retry with the same X-Request-ID: the first answer stays
        assert client.post("/predict", json=body, headers={"X-Request-ID": request_id}).status_code == 200
    log = prediction_log_of(app)
    assert log.flush(30)
    assert [(r.row, r.inputs) for r in logged(log.database)] == list(enumerate(BATCH))
