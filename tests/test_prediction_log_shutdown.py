"""Nothing answered is lost when a server stops: gunicorn workers under load get SIGTERM, and every
answered request is in the prediction log afterwards.

The app is a minimal WSGI app that records each request, as ``/predict`` will once the log is
wired in; its writer is set never to write on its own (a ten-minute flush interval), so the rows
can only reach the database through the drain at the worker's exit.
"""

from __future__ import annotations

import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import requests

from tests.support import REPO, clean_env, free_port, running
from tests.test_prediction_log import logged

pytest_plugins = ["tests.postgres"]

APP = """
import os
from mldeploy.monitoring import PredictionLog

# One log per worker process (no preloading here), closed at the worker's exit.
LOG = PredictionLog(os.environ["LOG_DATABASE"], flush_interval=600, batch_size=10**9, queue_size=10**9)
ROW = {"sepal_length": 5.0, "sepal_width": 3.2, "petal_length": 1.5, "petal_width": 0.3}
ANSWER = {"Class": "setosa"}


def app(environ, start_response):
    request_id = environ.get("HTTP_X_REQUEST_ID")
    if request_id:
        LOG.record(request_id, "v1", [ROW, ROW], [ANSWER, ANSWER])
    start_response("200 OK", [("Content-Type", "application/json"), ("X-Request-ID", request_id or "-")])
    return [b"{}"]
"""
CLIENTS = 4
LOAD_SECONDS = 1.5  # of load before SIGTERM; the clients go on until the server refuses them
MAX_REQUESTS = 20_000  # per client, a bound whatever happens


def test_sigterm_under_load_drains_every_workers_queue(log_database: str, tmp_path: Path) -> None:
    (tmp_path / "logapp.py").write_text(APP)
    port = free_port()
    args = ["-m", "gunicorn", "--workers", "2", "--bind", f"127.0.0.1:{port}", "--graceful-timeout", "20"]
    args += ["--no-control-socket", "--pythonpath", str(REPO), "logapp:app"]
    answered: list[str] = []
    stop = threading.Event()

    def client(base: str) -> None:
        with requests.Session() as session:
            for _ in range(MAX_REQUESTS):
                if stop.is_set():
                    return
                request_id = uuid.uuid4().hex
                try:
                    res = session.get(base + "/predict", headers={"X-Request-ID": request_id}, timeout=10)
                except requests.RequestException:
                    return  # the server is going away
                if res.status_code == 200:
                    answered.append(request_id)

    env = clean_env(LOG_DATABASE=log_database)
    with running(args, tmp_path, port, env=env, log=tmp_path / "gunicorn.log") as (base, proc):
        clients = [threading.Thread(target=client, args=(base,)) for _ in range(CLIENTS)]
        for c in clients:
            c.start()
        time.sleep(LOAD_SECONDS)
        in_flight = len(answered)
        proc.send_signal(signal.SIGTERM)  # to the master, by PID, as Kubernetes and docker stop do
        assert proc.wait(60) == 0, (tmp_path / "gunicorn.log").read_text()[-2000:]
        stop.set()
        for c in clients:
            c.join(30)
    rows = Counter(r.request_id for r in logged(log_database))
    backend = "postgresql" if "://" in log_database else "sqlite"
    print(f"\n[{backend}] {len(answered)} answered ({in_flight} before SIGTERM), {len(rows)} logged")
    assert in_flight > 0
    missing = [i for i in answered if rows.get(i) != 2]
    assert not missing, f"{len(missing)} answered requests not (fully) logged, e.g. {missing[:3]}"
    assert set(rows.values()) == {2}  # each logged request once, both rows
