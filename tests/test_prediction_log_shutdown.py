"""Nothing answered is lost when a server stops: the service under gunicorn (2 workers, the
repository's config) gets SIGTERM while clients keep sending single rows and batches, and every
answered row is in the prediction log afterwards, once, in SQLite and in PostgreSQL; then
``mldeploy log export`` writes exactly what was served.

The log's writer is set never to write on its own (a ten-minute flush interval, batches larger
than the run), so the rows can only reach the database through each worker's drain at its exit
(gunicorn's ``worker_exit`` hook).
"""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import requests

from mldeploy.contract import CLASS, PREDICTIONS
from modeler.modeler import Modeler
from tests.support import GUNICORN_CONF, REPO, SEED_ROW, clean_env, free_port, running
from tests.test_prediction_log import logged

pytest_plugins = ["tests.postgres"]

CLIENTS = 4
LOAD_SECONDS = 1.5  # of load before SIGTERM
# The clients go on this long after SIGTERM (or until the server refuses them), as traffic does
# until a load balancer takes the replica out: the workers drain those connections, then write
# their logs. (Under load that never stops, the drain may take the whole grace period and leave
# the log about a second: MLDEPLOY_GRACEFUL_TIMEOUT - 1.)
AFTER_SIGTERM_SECONDS = 2.0
MAX_REQUESTS = 5_000  # per client, a bound whatever happens
BATCH_EVERY = 5  # every fifth request is a batch of BATCH_ROWS rows
BATCH_ROWS = 3


def test_sigterm_under_load_drains_every_workers_queue(log_database: str, tmp_path: Path) -> None:
    model_dir = tmp_path / "models"
    Modeler(model_dir).fit()
    port = free_port()
    args = ["-m", "gunicorn", "--config", GUNICORN_CONF, "--workers", "2", "--bind", f"127.0.0.1:{port}"]
    env = clean_env(
        MLDEPLOY_MODEL_DIR=str(model_dir),
        MLDEPLOY_LOG_DATABASE=log_database,
        MLDEPLOY_LOG_FLUSH_INTERVAL="600",
        MLDEPLOY_LOG_BATCH_SIZE="1000000000",
        MLDEPLOY_LOG_QUEUE_SIZE="1000000000",
    )
    answered: dict[str, list[str]] = {}  # request id -> the classes it was answered
    sent: set[str] = set()
    stop = threading.Event()

    def client(base: str, seed: int) -> None:
        with requests.Session() as session:
            for i in range(MAX_REQUESTS):
                if stop.is_set():
                    return
                request_id = uuid.uuid4().hex
                rows = [{**SEED_ROW, "petal_length": 1.0 + (seed + j) % 6} for j in range(BATCH_ROWS)]
                body = rows if i % BATCH_EVERY == 0 else rows[0]
                sent.add(request_id)
                try:
                    res = session.post(base + "/predict", json=body, headers={"X-Request-ID": request_id}, timeout=10)
                except requests.RequestException:
                    return  # the server is going away
                if res.status_code == 200:
                    answer = res.json()
                    answered[request_id] = (
                        [p[CLASS] for p in answer[PREDICTIONS]] if isinstance(body, list) else [answer[CLASS]]
                    )

    server_log = tmp_path / "gunicorn.log"
    with running(args, REPO, port, env=env, log=server_log) as (base, proc):
        clients = [threading.Thread(target=client, args=(base, n)) for n in range(CLIENTS)]
        for c in clients:
            c.start()
        time.sleep(LOAD_SECONDS)
        before_sigterm = len(answered)
        proc.send_signal(signal.SIGTERM)  # to the master, by PID, as Kubernetes and docker stop do
        time.sleep(AFTER_SIGTERM_SECONDS)
        stop.set()
        for c in clients:
            c.join(30)
        assert proc.wait(60) == 0, server_log.read_text()[-2000:]
    records = logged(log_database)
    rows = Counter(r.request_id for r in records)
    backend = "postgresql" if "://" in log_database else "sqlite"
    print(f"\n[{backend}] {len(answered)} answered ({before_sigterm} before SIGTERM), {len(rows)} logged")
    assert before_sigterm > 0
    missing = [i for i, classes in answered.items() if rows.get(i) != len(classes)]
    assert not missing, f"{len(missing)} answered requests not (fully) logged, e.g. {missing[:3]}"
    assert set(rows) <= sent  # nothing logged that no client sent
    assert len(records) == len({(r.request_id, r.row) for r in records})  # each row once
    logged_classes = {(r.request_id, r.row): r.outputs[CLASS] for r in records}
    assert all(logged_classes[i, row] == c for i, classes in answered.items() for row, c in enumerate(classes))

    # What was served, exported: one CSV row per logged row.
    out = tmp_path / "served.csv"
    done = subprocess.run(
        [sys.executable, "-m", "mldeploy", "log", "export", "-o", str(out)],
        cwd=REPO,
        env=clean_env(MLDEPLOY_MODEL_DIR=str(model_dir), MLDEPLOY_LOG_DATABASE=log_database),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    with out.open(newline="") as handle:
        exported = list(csv.DictReader(handle))
    assert len(exported) == len(records) and Counter(r["request_id"] for r in exported) == rows
    assert {r["Class"] for r in exported} <= {"setosa", "versicolor", "virginica"}
