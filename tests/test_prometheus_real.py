"""A real Prometheus (Debian's) scrapes ``python -m mldeploy serve --workers 2`` every second
through a minute of traffic, with the repository's alert rules loaded; then the test asks
Prometheus: the request counters are what was sent, and the drift gauges are the test's own
computation over the rows it sent."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
import yaml

from mldeploy.http.request_context import REQUEST_ID_HEADER
from modeler.reference import REFERENCE
from tests.support import REPO, clean_env, free_port, running, stop, wait_ready
from tests.test_drift import FEATURES, SHIFT, iris_rows, own_psi

TRAFFIC_SECONDS = 60
SCRAPE_INTERVAL = "1s"
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
SERVER_LOGS: dict[str, Path] = {}


@pytest.fixture(scope="module")
def prometheus_binary() -> str:
    found = shutil.which("prometheus")
    if found is None:
        pytest.fail("prometheus not found: run `make system-deps` (Debian's prometheus package)")
    return found


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m mldeploy serve --workers 2`` on a fresh model directory (its log: server.log)."""
    root = tmp_path_factory.mktemp("served")
    (root / "models").mkdir()
    port = free_port()
    env = clean_env(MLDEPLOY_MODEL_DIR=str(root / "models"))
    argv = ["-m", "mldeploy", "serve", "--workers", "2", "--port", str(port)]
    with running(argv, REPO, port, env=env, log=root / "server.log") as (base, _):
        wait_ready(base + "/ready")
        SERVER_LOGS[base] = root / "server.log"
        yield base


@pytest.fixture(scope="module")
def prometheus(prometheus_binary: str, served: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Prometheus on a free loopback port, scraping ``served``; yields its base URL."""
    root = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": SCRAPE_INTERVAL, "evaluation_interval": SCRAPE_INTERVAL},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [{"job_name": "mldeploy", "static_configs": [{"targets": [served.removeprefix("http://")]}]}],
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = open(root / "prometheus.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            prometheus_binary,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (root / "prometheus.log").read_text()[-2000:]
            try:
                if requests.get(f"{base}/-/ready", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "Prometheus not ready within 60 s"
            time.sleep(0.2)
        yield base
    finally:
        stop(proc)
        log.close()


def query(prometheus: str, expr: str) -> list[dict]:
    """An instant query's result vector."""
    res = requests.get(f"{prometheus}/api/v1/query", params={"query": expr}, timeout=10).json()
    assert res["status"] == "success", res
    return res["data"]["result"]


def scalar(prometheus: str, expr: str) -> float | None:
    found = query(prometheus, expr)
    return float(found[0]["value"][1]) if found else None


def eventually(prometheus: str, expr: str, expected: float, timeout: float = 45.0, rel: float = 1e-9) -> float | None:
    """The value of ``expr`` once it equals ``expected`` (or the last one seen at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        value = scalar(prometheus, expr)
        if value is not None and value == pytest.approx(expected, rel=rel):
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(0.5)


def test_prometheus_sees_what_was_sent(served: str, prometheus: str) -> None:
    # A minute of traffic: single rows, a shifted batch now and then, and a bad request, each on a
    # new connection from 4 threads, so that both workers answer.
    normal, shifted = iris_rows(480, seed=21), iris_rows(240, seed=22, shift=SHIFT)
    bodies: list[object] = [[row] for row in normal] + [shifted[i : i + 8] for i in range(0, len(shifted), 8)]
    bodies += [{"sepal_length": 5.0}] * 20  # 400s: counted, not logged
    order = sorted(range(len(bodies)), key=lambda i: (i * 7919) % len(bodies))  # mixed, deterministically
    ids = [f"prom-{uuid.uuid4().hex[:12]}" for _ in bodies]
    started = time.monotonic()

    def send(position: int) -> int:
        # Spread over the minute: the request at position p leaves at p / len(bodies) of it.
        time.sleep(max(0.0, started + TRAFFIC_SECONDS * position / len(bodies) - time.monotonic()))
        index = order[position]
        headers = {REQUEST_ID_HEADER: ids[index]}
        return requests.post(f"{served}/predict", json=bodies[index], headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(send, range(len(bodies))))
    assert time.monotonic() - started >= TRAFFIC_SECONDS * 0.95
    lines = [json.loads(line) for line in SERVER_LOGS[served].read_text().splitlines() if line.strip()]
    assert len({line["pid"] for line in lines if line.get("request_id") in set(ids)}) == 2, "both workers answered"
    sent_ok, sent_bad = statuses.count(200), statuses.count(400)
    assert (sent_ok, sent_bad) == (480 + 30, 20)

    predict = 'sum(mldeploy_http_requests_total{endpoint="/predict", method="POST", status="%s"})'
    assert eventually(prometheus, predict % "200", sent_ok) == sent_ok
    assert eventually(prometheus, predict % "400", sent_bad) == sent_bad
    rows = len(normal) + len(shifted)
    assert eventually(prometheus, "sum(mldeploy_predictions_total)", rows) == rows
    assert eventually(prometheus, "max(mldeploy_drift_window_rows)", rows) == rows

    reference = requests.get(f"{served}/model", timeout=10).json()[REFERENCE]
    sent = normal + shifted
    for name in FEATURES:
        entry = reference["features"][name]
        expected = own_psi(entry["edges"], entry["counts"], [row[name] for row in sent])
        got = eventually(prometheus, f'max(mldeploy_drift_psi{{feature="{name}"}})', expected, rel=1e-6)
        assert got == pytest.approx(expected, rel=1e-6), name
    assert eventually(prometheus, 'max(mldeploy_drift_verdict{feature="petal_length"})', 2) == 2

    # Both workers were scraped through one port: the target is up, and the rules loaded.
    assert scalar(prometheus, 'up{job="mldeploy"}') == 1
    groups = requests.get(f"{prometheus}/api/v1/rules", timeout=10).json()["data"]["groups"]
    loaded = {rule["name"] for group in groups for rule in group["rules"]}
    assert {"MldeployMajorDrift", "MldeployAccuracyDrop", "MldeployHighErrorRate", "MldeployHighP99Latency"} <= loaded
