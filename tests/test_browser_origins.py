"""Issue 15 in a real headless Chromium: a page from a second loopback origin calls ``/predict``
(refused without ``MLDEPLOY_CORS_ORIGINS``, answered with it, its key passing the preflight), and
``/docs`` renders Swagger UI under its Content-Security-Policy with no violation."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import chromium
from tests.support import REPO, SEED_ROW, clean_env, copy_project, free_port, running

API_KEY = "browser-page-key"
WAIT = 30
ARTIFACTS = REPO / "test-artifacts"
# The page on the second origin: it calls the API named in its query string with a key and a
# JSON body (both make the browser send a preflight first) and writes the outcome into the DOM.
CALLER = """<!doctype html>
<html><head><meta charset="utf-8"><title>caller</title></head>
<body><pre id="out"></pre>
<script>
const params = new URLSearchParams(location.search);
const out = document.getElementById("out");
fetch(params.get("api") + "/predict", {
  method: "POST",
  headers: {"Content-Type": "application/json", "Authorization": "Bearer " + params.get("key")},
  body: JSON.stringify(ROW),
}).then(async (res) => {
  const body = await res.json();
  out.textContent = "answered " + res.status + " " + body.Class + " " + res.headers.get("X-Request-ID");
}).catch((err) => { out.textContent = "refused " + err.name + ": " + err.message; });
</script></body></html>
""".replace("ROW", json.dumps(SEED_ROW))
# Records every CSP violation from the first script on: installed before any page script runs.
RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.cspViolations.push(e.violatedDirective + " " + e.blockedURI));
"""


@pytest.fixture(scope="module")
def page_origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m http.server`` on its own port, serving caller.html: a second origin."""
    root = tmp_path_factory.mktemp("second-origin")
    (root / "caller.html").write_text(CALLER)
    port = free_port()
    argv = ["-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(root)]
    with running(argv, root, port) as (base, _):
        yield base


def api_server(tmp_path_factory: pytest.TempPathFactory, **env: str) -> Iterator[tuple[str, Path]]:
    """``python app.py`` with keys on and ``env``; yields its base URL and log."""
    project = copy_project(tmp_path_factory.mktemp("api"))
    port, log = free_port(), project / "server.log"
    with running(
        ["app.py", "--port", str(port)], project, port, env=clean_env(MLDEPLOY_API_KEYS=API_KEY, **env), log=log
    ) as (
        base,
        _,
    ):
        requests.post(base + "/predict", json=SEED_ROW, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)
        yield base, log


@pytest.fixture(scope="module")
def closed_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """The default: MLDEPLOY_CORS_ORIGINS unset."""
    yield from api_server(tmp_path_factory)


@pytest.fixture(scope="module")
def open_api(tmp_path_factory: pytest.TempPathFactory, page_origin: str) -> Iterator[tuple[str, Path]]:
    """MLDEPLOY_CORS_ORIGINS listing the page's origin only."""
    yield from api_server(tmp_path_factory, MLDEPLOY_CORS_ORIGINS=page_origin)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        yield driver


def outcome(driver: WebDriver, page: str, api: str) -> str:
    """What the caller page wrote after calling ``api``."""
    driver.get(f"{page}/caller.html?api={api}&key={API_KEY}")
    WebDriverWait(driver, WAIT).until(lambda d: d.find_element(By.ID, "out").text)
    return driver.find_element(By.ID, "out").text


def logged(log: Path, method: str, path: str) -> int:
    """How many requests the server's JSON log shows for ``method path``."""
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return sum(1 for line in lines if line.get("method") == method and line.get("path") == path)


def test_without_the_setting_the_browser_refuses_the_call(browser: WebDriver, page_origin: str, closed_api) -> None:
    base, log = closed_api
    posts_before = logged(log, "POST", "/predict")
    text = outcome(browser, page_origin, base)
    print(f"without MLDEPLOY_CORS_ORIGINS, from {page_origin} to {base}: {text}")
    assert text.startswith("refused TypeError"), text
    # The preflight was refused, so the POST itself was never sent.
    assert logged(log, "OPTIONS", "/predict") >= 1
    assert logged(log, "POST", "/predict") == posts_before


def test_with_the_setting_the_listed_origin_is_answered(browser: WebDriver, page_origin: str, open_api) -> None:
    base, _ = open_api
    text = outcome(browser, page_origin, base)
    print(f"with MLDEPLOY_CORS_ORIGINS={page_origin}, from {page_origin} to {base}: {text}")
    status, label, request_id = text.removeprefix("answered ").split(" ")
    assert (status, label) == ("200", "setosa"), text
    assert request_id != "null"  # an exposed header the page can read
    # localhost:port is another origin than 127.0.0.1:port, and it is not listed.
    other = page_origin.replace("127.0.0.1", "localhost")
    text = outcome(browser, other, base)
    print(f"with MLDEPLOY_CORS_ORIGINS={page_origin}, from {other} to {base}: {text}")
    assert text.startswith("refused TypeError"), text


def test_docs_render_under_their_policy_with_no_violation(browser: WebDriver, open_api) -> None:
    base, _ = open_api
    assert "script-src" in requests.get(base + "/docs", timeout=10).headers["Content-Security-Policy"]
    script = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_VIOLATIONS})
    try:
        browser.get(base + "/docs")
        WebDriverWait(browser, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path"))
        # Open an operation too: its schemas, examples and icons render on demand.
        browser.find_elements(By.CSS_SELECTOR, ".opblock-summary")[0].click()
        WebDriverWait(browser, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-body"))
        paths = {e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")}
        violations = browser.execute_script("return window.cspViolations")
        ARTIFACTS.mkdir(exist_ok=True)
        browser.save_screenshot(str(ARTIFACTS / "docs-csp.png"))
    finally:
        browser.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", script)
    print(f"/docs: {len(paths)} operations rendered, CSP violations: {violations}")
    assert {"/predict", "/health", "/ready"} <= paths, "Swagger UI did not render"
    assert violations == []
