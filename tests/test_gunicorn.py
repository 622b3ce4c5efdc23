"""The production server as users run it: ``python -m mldeploy serve --workers 2`` in a fresh copy
of the code, one server for the whole module. Metrics add up across both workers, every request
has one JSON log line with its id, API keys guard the model routes and never reach the log, and
/docs renders in a real headless Chromium without a request leaving the host (screenshot in
test-artifacts/docs.png)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from mldeploy.http.request_context import REQUEST_ID_HEADER
from tests.browser import chromium, requested_urls
from tests.deploy_files import dockerfile_instructions, exec_form, manifests
from tests.support import REPO, SEED_ROW, clean_env, copy_project, free_port, metric_value, running

API_KEY = "live-secret-key-0123"
AUTH = {"Authorization": f"Bearer {API_KEY}"}
REQUESTS = 200  # the acceptance run in the README does 1,000; this keeps the suite quick
# A value no other test sends, to look for in the log.
TELLTALE = 4.918273645
ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, int]]:
    """The served copy; yields (base URL, log file, master PID)."""
    project = copy_project(tmp_path_factory.mktemp("served"))
    port = free_port()
    log = project / "server.log"
    env = clean_env(MLDEPLOY_API_KEYS=f"another-key,{API_KEY}")
    argv = ["-m", "mldeploy", "serve", "--workers", "2", "--port", str(port)]
    with running(argv, project, port, env=env, log=log) as (base, proc):
        yield base, log, proc.pid


def log_lines(log: Path) -> list[dict]:
    """The server's JSON log lines (every line must be JSON)."""
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def sample(base: str, name: str, **labels: str) -> float:
    """The value of one sample of /metrics (0 when absent)."""
    return metric_value(requests.get(f"{base}/metrics", timeout=10).text, name, **labels)


def parent_of(pid: int) -> int:
    """The parent PID of a process (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("PPid:"):
            return int(line.split()[1])
    raise LookupError(pid)


def test_n_requests_across_two_workers_are_all_counted_and_logged(server) -> None:
    base, log, master = server
    predict_200 = {"endpoint": "/predict", "method": "POST", "status": "200"}
    before = sample(base, "mldeploy_http_requests_total", **predict_200)
    setosa_before = sample(base, "mldeploy_predictions_total", **{"class": "setosa"})
    ids = [f"t-{uuid.uuid4().hex[:12]}" for _ in range(REQUESTS)]

    def call(rid: str) -> requests.Response:
        # A new connection per request, so that both workers take a share.
        return requests.post(f"{base}/predict", json=SEED_ROW, headers={**AUTH, REQUEST_ID_HEADER: rid}, timeout=30)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, ids))
    assert [a.status_code for a in answers] == [200] * REQUESTS
    assert [a.headers[REQUEST_ID_HEADER] for a in answers] == ids

    assert sample(base, "mldeploy_http_requests_total", **predict_200) - before == REQUESTS
    assert sample(base, "mldeploy_predictions_total", **{"class": "setosa"}) - setosa_before == REQUESTS
    hist = sample(base, "mldeploy_http_request_duration_seconds_count", **predict_200)
    assert hist == sample(base, "mldeploy_http_requests_total", **predict_200)

    lines = {line["request_id"]: line for line in log_lines(log) if line.get("request_id") in set(ids)}
    assert len(lines) == REQUESTS, "one log line per request, each with the id the client sent"
    pids = {line["pid"] for line in lines.values()}
    assert len(pids) == 2 and all(parent_of(pid) == master for pid in pids), "served by both workers"
    line = lines[ids[0]]
    assert line["method"] == "POST" and line["path"] == "/predict" and line["status"] == 200
    assert line["rows"] == 1 and line["model_version"] == answers[0].json()["ModelVersion"]
    assert isinstance(line["latency_ms"], float)


def test_model_version_info_and_load_events_are_exposed(server) -> None:
    base, _, _ = server
    version = requests.get(f"{base}/model", headers=AUTH, timeout=10).json()["version"]
    assert sample(base, "mldeploy_model_info", version=version) == 1
    # The master trained the first version before forking (an empty models/ in the copy).
    assert sample(base, "mldeploy_model_events_total", event="trained") == 1


def test_validation_failures_are_counted_by_field(server) -> None:
    base, _, _ = server
    before = sample(base, "mldeploy_validation_failures_total", field="petal_width")
    bad = requests.post(f"{base}/predict", json={**SEED_ROW, "petal_width": "x"}, headers=AUTH, timeout=10)
    assert bad.status_code == 400
    assert sample(base, "mldeploy_validation_failures_total", field="petal_width") - before == 1


def test_keys_guard_model_routes_only_and_never_reach_the_log(server) -> None:
    base, log, _ = server
    for path in ("/health", "/ready", "/metrics", "/openapi.json", "/docs"):
        assert requests.get(f"{base}{path}", timeout=10).status_code == 200, path
    missing = requests.post(f"{base}/predict", json=SEED_ROW, timeout=10)
    wrong = requests.get(f"{base}/model", headers={"Authorization": "Bearer nope"}, timeout=10)
    in_query = requests.get(f"{base}/model", params={"api_key": API_KEY}, timeout=10)
    for res in (missing, wrong, in_query):
        assert res.status_code == 401
        assert res.headers["WWW-Authenticate"].startswith("Bearer")
        assert "MLDEPLOY_API_KEYS" in res.json()["message"]
    ok = requests.post(f"{base}/predict", json={**SEED_ROW, "sepal_length": TELLTALE}, headers=AUTH, timeout=10)
    assert ok.status_code == 200
    text = log.read_text()
    assert API_KEY not in text
    assert str(TELLTALE) not in text, "a feature value reached the INFO log"
    assert all(line["level"] in ("INFO", "WARNING", "ERROR") for line in log_lines(log))


def test_dockerfile_healthcheck_and_kubernetes_probes_pass_on_the_live_server(server) -> None:
    base, _, _ = server
    port = base.rsplit(":", 1)[1]
    check = exec_form(dict(dockerfile_instructions())["HEALTHCHECK"].split("CMD", 1)[1].strip())
    assert check[0] == "python"
    check[0] = sys.executable  # the image's python; here, ours
    assert subprocess.run(check, env=clean_env(MLDEPLOY_PORT=port), timeout=30).returncode == 0
    # The same command fails when nothing answers, so it can tell a dead server.
    closed = subprocess.run(check, env=clean_env(MLDEPLOY_PORT=str(free_port())), capture_output=True, timeout=30)
    assert closed.returncode != 0
    container = manifests()["Deployment"]["spec"]["template"]["spec"]["containers"][0]
    for probe in ("readinessProbe", "livenessProbe"):
        assert requests.get(base + container[probe]["httpGet"]["path"], timeout=10).status_code == 200


def test_docs_render_in_a_real_browser_with_every_request_to_this_host(server, tmp_path: Path) -> None:
    base, _, _ = server
    with chromium(tmp_path / "profile", network_log=True) as driver:
        driver.get("about:blank")
        requested_urls(driver)  # the browser's own start-up requests are not the page's
        driver.get(base + "/docs")
        WebDriverWait(driver, 30).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
        paths = {e.text for e in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
        urls = requested_urls(driver)
        ARTIFACTS.mkdir(exist_ok=True)
        driver.save_screenshot(str(ARTIFACTS / "docs.png"))
    assert {"/predict", "/health", "/ready", "/metrics"} <= paths, "Swagger UI did not render the operations"
    assert base + "/openapi.json" in urls and base + "/docs/swagger-ui-bundle.js" in urls
    assert [u for u in urls if not u.startswith((base + "/", "data:"))] == [], "a request left the host"
