"""deploy/prometheus/alerts.yml with Debian's promtool: the rules load, their unit tests
(deploy/prometheus/alerts_test.yml) pass and would catch a wrong threshold, and every metric a
rule names is one the service exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from mldeploy.http.app import create_app
from tests.support import REPO, exposed_names

RULES_DIR = REPO / "deploy" / "prometheus"
RULES = RULES_DIR / "alerts.yml"
RULE_TESTS = RULES_DIR / "alerts_test.yml"
ALERTS = {"MldeployHighErrorRate", "MldeployHighP99Latency", "MldeployMajorDrift", "MldeployAccuracyDrop"}


@pytest.fixture(scope="module")
def promtool() -> str:
    """Debian's promtool (package prometheus; `make system-deps` installs it)."""
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: run `make system-deps` (Debian's prometheus package)")
    return found


def run(promtool: str, *args: str, cwd: Path = RULES_DIR) -> subprocess.CompletedProcess:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_the_rules_load_and_their_unit_tests_pass(promtool: str) -> None:
    checked = run(promtool, "check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"SUCCESS: {len(ALERTS)} rules found" in checked.stdout
    tested = run(promtool, "test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    covered = {case["alertname"] for test in tests for case in test["alert_rule_test"]}
    assert covered == ALERTS, "every alert has a unit test"


@pytest.mark.parametrize(
    ("alert", "right", "wrong"),
    [
        ("MldeployMajorDrift", "mldeploy_drift_verdict) >= 2", "mldeploy_drift_verdict) >= 1"),
        ("MldeployAccuracyDrop", "mldeploy_holdout_accuracy) - 0.1)", "mldeploy_holdout_accuracy) - 0.05)"),
        ("MldeployHighErrorRate", "> 0.01", "> 0.05"),
    ],
)
def test_the_unit_tests_catch_a_wrong_threshold(
    promtool: str, tmp_path: Path, alert: str, right: str, wrong: str
) -> None:
    text = RULES.read_text()
    assert text.count(right) == 1, right
    (tmp_path / RULES.name).write_text(text.replace(right, wrong))
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    tested = run(promtool, "test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert tested.returncode != 0, f"{alert} with {wrong!r} still passes its unit tests"
    assert alert in tested.stdout + tested.stderr


def test_every_metric_a_rule_names_is_exported(models: Path) -> None:
    exposed = exposed_names(create_app({"MODEL_DIR": str(models), "WARMUP": False}))
    rules = yaml.safe_load(RULES.read_text())
    alerts = {rule["alert"]: rule for group in rules["groups"] for rule in group["rules"]}
    assert set(alerts) == ALERTS
    for name, rule in alerts.items():
        used = set(re.findall(r"\b(mldeploy_\w+)", rule["expr"]))
        assert used and used <= exposed, f"{name}: {used - exposed} not in a live /metrics exposition"
        assert rule["for"] and rule["labels"]["severity"] and rule["annotations"]["summary"]
