"""Every route that answers about the current model follows the pointer (issue 11.1): after a
command-line ``train``, gunicorn's two workers describe the new version on ``/model``, ``/ready``,
``/v2/models/iris`` and in the ``mldeploy_model_info`` metric within the poll interval, with no
``/predict`` traffic at all."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from modeler.store import POINTER_FILE
from tests.support import (
    clean_env,
    copy_project,
    free_port,
    gunicorn_args,
    run_cli,
    running,
    wait_ready,
    workers_by_request_id,
)

WORKERS = 2
POLL_INTERVAL = 0.5  # MLDEPLOY_POLL_INTERVAL's default
MARGIN = 0.5  # for process scheduling on a busy machine; the follow itself is due at POLL_INTERVAL
ids = itertools.count()


def served_versions(metrics_text: str) -> set[str]:
    """The versions ``mldeploy_model_info`` reports as served (value 1)."""
    return {
        s.labels["version"]
        for family in text_string_to_metric_families(metrics_text)
        for s in family.samples
        if s.name == "mldeploy_model_info" and s.value == 1
    }


# What each route says the current version is.
ROUTES: dict[str, Callable[[requests.Response], object]] = {
    "/model": lambda res: res.json()["version"],
    "/ready": lambda res: res.json()["ModelVersion"],
    "/v2/models/iris": lambda res: res.json()["versions"][0],
    "/metrics": lambda res: served_versions(res.text),
}


def describe(base: str, access_log: Path, route: str) -> dict[int, set]:
    """Ask ``route`` until both workers have answered it: ``{worker pid: what each answer said}``."""
    said: dict[str, object] = {}
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        request_id = f"follow-{next(ids)}"
        res = requests.get(base + route, headers={"X-Request-Id": request_id}, timeout=10)
        assert res.status_code == 200, (route, res.text[:300])
        said[request_id] = ROUTES[route](res)
        by_worker = workers_by_request_id(access_log, expect=said, timeout=5)
        answers: dict[int, set] = {}
        for rid, value in said.items():
            answers.setdefault(by_worker[rid], set()).add(
                json.dumps(sorted(value) if isinstance(value, set) else value)
            )
        if len(answers) == WORKERS:
            return answers
    raise TimeoutError(f"both workers did not answer {route} within 30 s")


def test_a_command_line_train_is_followed_by_every_route_without_traffic(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    model_dir = project / "models"
    port, access = free_port(), tmp_path / "access.log"
    env = clean_env(MLDEPLOY_MODEL_DIR=str(model_dir))
    with running(gunicorn_args(port, WORKERS, access), project, port, env, log=tmp_path / "server.log") as (base, _):
        wait_ready(base + "/ready")
        old = requests.get(base + "/model", timeout=10).json()["version"]
        for route in ROUTES:
            expected = json.dumps([old]) if route == "/metrics" else json.dumps(old)
            assert set(map(frozenset, describe(base, access, route).values())) == {frozenset([expected])}, route

        trained = run_cli(model_dir, "train", "--param", "max_depth=4")
        assert trained.returncode == 0, trained.stderr
        switched = time.monotonic()
        new = json.loads(trained.stdout)["version"]
        assert new != old and (model_dir / POINTER_FILE).read_text().strip() == new
        assert requests.get(base + "/model/versions", timeout=10).json()["current"] == new

        time.sleep(max(0.0, switched + POLL_INTERVAL + MARGIN - time.monotonic()))
        # No /predict at all: each route follows the pointer by itself, in each worker.
        for route in ROUTES:
            expected = json.dumps([new]) if route == "/metrics" else json.dumps(new)
            answers = describe(base, access, route)
            assert set(map(frozenset, answers.values())) == {frozenset([expected])}, (route, old, new, answers)
