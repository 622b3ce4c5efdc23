"""Canary and shadow rollouts on a real gunicorn (4 workers) sharing one model directory: the
share of a 10 % canary over 5,000 requests from 8 clients, promote and abort under load with no
failed request, sticky keys, a damaged candidate aborted by itself, a shadow whose answers are
never returned, and the shared figures checked against a computation of our own.

Figures are printed (``pytest -s``); the assertions are about behaviour only.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import requests

from modeler.modeler import Modeler
from modeler.store import ARTIFACT_FILE, VERSIONS_DIR
from tests.support import clean_env, copy_project, free_port, gunicorn_args, run_cli, running, wait_ready

WORKERS, CLIENTS, REQUESTS = 4, 8, 5_000
POLL = 0.5
ADMIN_KEY = "rollout-admin-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
IRIS = "iris"


def flowers(n: int, seed: int) -> list[dict]:
    """Rows spread over Iris's ranges: both versions disagree on some of them."""
    rng = np.random.default_rng(seed)
    low, high = np.array([4.3, 2.0, 1.0, 0.1]), np.array([7.9, 4.4, 6.9, 2.5])
    values = rng.uniform(low, high, size=(n, 4)).round(1)
    names = ("sepal_length", "sepal_width", "petal_length", "petal_width")
    return [dict(zip(names, map(float, row), strict=True)) for row in values]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, str, str]]:
    """gunicorn with 4 workers on a model directory holding a baseline (current) and a
    candidate (a shallower tree); yields (base URL, model directory, baseline, candidate)."""
    root = tmp_path_factory.mktemp("rollout")
    (root / "project").mkdir()
    project = copy_project(root / "project")
    models = project / "models"
    candidate = Modeler(models, max_depth=2).fit().version
    baseline = Modeler(models).fit().version
    port = free_port()
    env = clean_env(MLDEPLOY_MODEL_DIR=str(models), MLDEPLOY_ADMIN_KEY=ADMIN_KEY, MLDEPLOY_POLL_INTERVAL=str(POLL))
    with running(gunicorn_args(port, WORKERS), project, port, env, log=root / "server.log") as (base, _):
        wait_ready(base + "/ready")
        yield base, models, baseline, candidate


def cli(models: Path, *args: str) -> dict:
    done = run_cli(models, "rollout", *args, MLDEPLOY_POLL_INTERVAL=str(POLL))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def status(base: str) -> dict:
    time.sleep(0.6)  # every worker flushes its counts every 0.25 s
    res = requests.get(f"{base}/models/{IRIS}/rollout", timeout=10)
    assert res.status_code == 200, res.text
    return res.json()


def predict_all(base: str, rows: list[dict], headers: list[dict] | None = None) -> list[tuple[int, str | None]]:
    """POST each row to /predict from CLIENTS threads, each with its own connection."""
    local = threading.local()

    def one(i: int) -> tuple[int, str | None]:
        session = getattr(local, "session", None) or setattr(local, "session", requests.Session()) or local.session
        try:
            res = session.post(f"{base}/predict", json=rows[i], headers=(headers or [{}] * len(rows))[i], timeout=30)
        except requests.RequestException as exc:
            return -1, repr(exc)
        return res.status_code, res.json().get("ModelVersion") if res.ok else res.text

    with ThreadPoolExecutor(CLIENTS) as pool:
        return list(pool.map(one, range(len(rows))))


def expected_agreement(models: Path, rows: list[dict], baseline: str, candidate: str) -> int:
    """Rows on which the two versions give the same class, computed here."""
    modeler = Modeler(models, lazy_train=False)
    a = modeler.infer(rows, model=modeler.saved_version(baseline)).labels
    b = modeler.infer(rows, model=modeler.saved_version(candidate)).labels
    return sum(x == y for x, y in zip(a, b, strict=True))


class Load:
    """CLIENTS threads posting rows to /predict until stopped, each answer with its send time."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.answers: list[tuple[float, int, str | None]] = []
        self.stopped = threading.Event()
        self.rows = itertools.cycle(flowers(500, seed=7))
        self.lock = threading.Lock()

    def _run(self) -> None:
        session = requests.Session()
        while not self.stopped.is_set():
            with self.lock:
                row = next(self.rows)
            sent = time.monotonic()
            try:
                res = session.post(f"{self.base}/predict", json=row, timeout=30)
                answer = (sent, res.status_code, res.json().get("ModelVersion") if res.ok else res.text)
            except requests.RequestException as exc:
                answer = (sent, -1, repr(exc))
            self.answers.append(answer)

    def __enter__(self) -> Load:
        self.threads = [threading.Thread(target=self._run) for _ in range(CLIENTS)]
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join()


def test_a_10_percent_canary_sends_10_percent_to_the_candidate_with_no_failure(server) -> None:
    base, models, baseline, candidate = server
    started = cli(models, "start", IRIS, candidate, "--percent", "10")["rollout"]
    assert (started["state"], started["mode"], started["percent"]) == ("active", "canary", 10.0)
    time.sleep(POLL + 0.2)  # every worker follows within the poll interval
    rows = flowers(REQUESTS, seed=1)
    answers = predict_all(base, rows)
    statuses = Counter(status for status, _ in answers)
    versions = Counter(version for _, version in answers)
    share = versions[candidate] / REQUESTS
    figures = status(base)
    deadline = time.monotonic() + 10
    # Each worker writes its counts every quarter second, a busy one (its after-answer thread
    # comparing candidate rows) a moment later: the shared figures catch up with what was answered.
    while sum(arm["requests"] for arm in figures["arms"].values()) < REQUESTS and time.monotonic() < deadline:
        figures = status(base)
    cli(models, "abort", IRIS)
    to_candidate = [row for row, (_, version) in zip(rows, answers, strict=True) if version == candidate]
    print(
        f"\ncanary 10 %: {REQUESTS} requests, {CLIENTS} clients, {WORKERS} workers: statuses={dict(statuses)} "
        f"candidate share={share:.2%}; shared counts {figures['arms']['candidate']['requests']} candidate, "
        f"{figures['arms']['baseline']['requests']} baseline; agreement {figures['agreement']}"
    )
    assert statuses == {200: REQUESTS}
    assert set(versions) == {baseline, candidate}
    assert 0.08 <= share <= 0.12
    # The figures every worker shares are the clients' own count.
    assert figures["arms"]["candidate"]["requests"] == versions[candidate]
    assert figures["arms"]["baseline"]["requests"] == versions[baseline]
    assert figures["arms"]["candidate"]["errors"] == 0
    assert sum(figures["arms"]["candidate"]["classes"].values()) == versions[candidate]
    assert figures["arms"]["baseline"]["latency_ms"]["p50"] > 0
    assert figures["arms"]["baseline"]["latency_ms"]["p99"] >= figures["arms"]["baseline"]["latency_ms"]["p50"]
    # Agreement on the candidate's rows, as computed here from both saved versions.
    agreement = figures["agreement"]
    assert agreement["compared_rows"] + agreement["dropped"] == len(to_candidate)
    if agreement["dropped"] == 0:
        assert agreement["agreed_rows"] == expected_agreement(models, to_candidate, baseline, candidate)


@pytest.mark.parametrize("action", ["promote", "abort"])
def test_promote_and_abort_under_load_fail_no_request(server, action: str) -> None:
    base, models, baseline, candidate = server
    start = requests.post(
        f"{base}/models/{IRIS}/rollout/start", json={"version": candidate, "percent": 50}, headers=ADMIN, timeout=60
    )
    assert start.status_code == 201, start.text
    with Load(base) as load:
        time.sleep(POLL + 1.0)
        res = requests.post(f"{base}/models/{IRIS}/rollout/{action}", headers=ADMIN, timeout=60)
        done = time.monotonic()
        time.sleep(POLL + 1.5)
    assert res.status_code == 200, res.text
    assert res.json()["rollout"]["state"] == ("promoted" if action == "promote" else "aborted")
    winner = candidate if action == "promote" else baseline
    before = Counter(v for sent, _, v in load.answers if sent < done)
    after = Counter(v for sent, _, v in load.answers if sent >= done + POLL)
    failed = [a for a in load.answers if a[1] != 200]
    print(
        f"\n{action} under load: {len(load.answers)} requests, failed={len(failed)}, before={dict(before)}, "
        f"one poll interval after={dict(after)}"
    )
    if action == "promote":  # back to the baseline by hand: the ended rollout no longer decides
        activated = run_cli(models, "activate", baseline)
        assert activated.returncode == 0, activated.stderr
        time.sleep(2 * POLL + 0.2)
        assert {v for _, v in predict_all(base, flowers(100, seed=9))} == {baseline}
    assert failed == []
    assert set(before) == {baseline, candidate}  # the canary was on
    assert set(after) == {winner} and sum(after.values()) > 100


def test_a_request_key_keeps_a_client_on_one_side(server) -> None:
    base, models, _, candidate = server
    cli(models, "start", IRIS, candidate, "--percent", "30")
    time.sleep(POLL + 0.2)
    keys = [f"client-{i}" for i in range(200) for _ in range(5)]
    answers = predict_all(base, flowers(len(keys), seed=3), [{"X-Request-Key": key} for key in keys])
    cli(models, "abort", IRIS)
    sides: dict[str, set] = {}
    for key, (code, version) in zip(keys, answers, strict=True):
        assert code == 200
        sides.setdefault(key, set()).add(version)
    on_candidate = sum(side == {candidate} for side in sides.values())
    print(f"\nsticky: 200 keys x 5 requests: {on_candidate} keys on the candidate")
    assert all(len(side) == 1 for side in sides.values())
    assert 30 <= on_candidate <= 90  # 30 % of 200 keys, give or take


def test_a_damaged_candidate_costs_no_request_and_aborts_itself(server) -> None:
    base, models, baseline, _ = server
    # A copy of the candidate, damaged on disk after the rollout checked it.
    damaged = Modeler(models, max_depth=3).fit().version
    assert run_cli(models, "activate", baseline).returncode == 0
    cli(models, "start", IRIS, damaged, "--percent", "50")
    artifact = models / VERSIONS_DIR / damaged / ARTIFACT_FILE
    artifact.write_bytes(artifact.read_bytes()[:100])
    time.sleep(POLL + 0.2)
    answers = predict_all(base, flowers(400, seed=5))
    ended = status(base)
    print(f"\ndamaged candidate: {Counter(answers)} -> {ended['rollout']['state']}: {ended['rollout']['reason']}")
    assert Counter(code for code, _ in answers) == {200: 400}
    assert {version for _, version in answers} == {baseline}
    assert ended["rollout"]["state"] == "aborted"
    assert ended["rollout"]["reason"].startswith("automatic: the candidate's error rate")
    assert ended["arms"]["candidate"]["errors"] >= 20


def test_a_shadow_never_answers_and_is_compared_on_every_row(server) -> None:
    base, models, baseline, candidate = server
    started = requests.post(
        f"{base}/models/{IRIS}/rollout/start", json={"version": candidate, "shadow": True}, headers=ADMIN, timeout=60
    )
    assert started.status_code == 201, started.text
    time.sleep(POLL + 0.2)
    rows = flowers(600, seed=11)
    answers = predict_all(base, rows)
    time.sleep(1.0)  # the copies are answered after the answers went out
    figures = status(base)
    requests.post(f"{base}/models/{IRIS}/rollout/abort", headers=ADMIN, timeout=60)
    print(f"\nshadow: {len(rows)} requests; candidate {figures['arms']['candidate']}; {figures['agreement']}")
    assert Counter(answers) == {(200, baseline): len(rows)}
    agreement = figures["agreement"]
    assert figures["arms"]["baseline"]["requests"] == len(rows)
    assert agreement["compared_rows"] + agreement["dropped"] == len(rows)
    assert figures["arms"]["candidate"]["requests"] == agreement["compared_rows"]
    assert figures["arms"]["candidate"]["latency_ms"]["p50"] > 0
    if agreement["dropped"] == 0:
        assert agreement["agreed_rows"] == expected_agreement(models, rows, baseline, candidate)


def test_the_state_refuses_what_it_cannot_do(server) -> None:
    base, models, baseline, candidate = server
    none = run_cli(models, "rollout", "promote", IRIS)
    assert none.returncode == 1 and "has no active rollout" in none.stderr
    unknown = requests.post(
        f"{base}/models/{IRIS}/rollout/start", json={"version": "20200101T000000Z-000000"}, headers=ADMIN, timeout=60
    )
    assert unknown.status_code == 404 and "20200101T000000Z-000000" in unknown.json()["message"]
    current = requests.post(
        f"{base}/models/{IRIS}/rollout/start", json={"version": baseline}, headers=ADMIN, timeout=60
    )
    assert current.status_code == 409 and "already the current version" in current.json()["message"]
    bad = requests.post(
        f"{base}/models/{IRIS}/rollout/start", json={"version": candidate, "percent": 0}, headers=ADMIN, timeout=60
    )
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "percent"
    cli(models, "start", IRIS, candidate)
    again = requests.post(f"{base}/models/{IRIS}/rollout/start", json={"version": candidate}, headers=ADMIN, timeout=60)
    cli(models, "abort", IRIS)
    assert again.status_code == 409 and "already has an active rollout" in again.json()["message"]
    listed = requests.get(f"{base}/models", timeout=10).json()
    assert listed["models"][0] == {"name": IRIS, "current": baseline, "default": True, "rollout": None}


def test_the_python_client_drives_a_rollout(server) -> None:
    from mldeploy_client import ApiError, Client

    base, _, baseline, candidate = server
    with Client(base, api_key=ADMIN_KEY) as client:
        started = client.rollout_start(IRIS, candidate, percent=20)
        assert started["rollout"]["candidate"] == candidate and started["rollout"]["percent"] == 20.0
        assert client.models()["models"][0]["rollout"]["candidate"] == candidate
        assert client.rollout_status(IRIS)["rollout"]["state"] == "active"
        pinned = client.predict_with(IRIS, [5.0, 3.2, 1.5, 0.3], version=candidate)
        assert pinned["ModelVersion"] == candidate
        ended = client.rollout_abort(IRIS, reason="enough")
        assert (ended["rollout"]["state"], ended["rollout"]["reason"]) == ("aborted", "enough")
        with pytest.raises(ApiError) as refused:
            client.rollout_promote(IRIS)
        assert refused.value.status == 409 and "no active rollout" in str(refused.value)
        assert client.predict_with(IRIS, [5.0, 3.2, 1.5, 0.3])["ModelVersion"] == baseline


def test_the_status_gives_each_version_its_live_accuracy_from_ground_truth(server) -> None:
    """A 50 % canary over Iris's own rows, the true species posted to /feedback: the status's
    live accuracy of each version equals the share of its own answers that were right."""
    from sklearn.datasets import load_iris

    base, models, baseline, candidate = server
    iris = load_iris()
    names = ("sepal_length", "sepal_width", "petal_length", "petal_width")
    rows = [dict(zip(names, map(float, x), strict=True)) for x in iris.data]
    truth = [str(iris.target_names[t]) for t in iris.target]
    cli(models, "start", IRIS, candidate, "--percent", "50")
    # Every worker follows within the poll interval: without the wait, the 150 requests (about
    # 0.3 s once the request path got faster) could all be answered before any worker saw it.
    time.sleep(POLL + 0.2)
    try:
        answered = []
        with requests.Session() as session:
            for row, actual in zip(rows, truth, strict=True):
                res = session.post(f"{base}/predict", json=row, timeout=30)
                assert res.status_code == 200, res.text
                answered.append((res.headers["X-Request-ID"], res.json(), actual))
            feedback = [{"request_id": rid, "actual": actual} for rid, _, actual in answered]
            posted = session.post(f"{base}/feedback", json=feedback, timeout=60)
            assert posted.status_code == 200, posted.text
        live = status(base)["live_performance"]
        by_command = cli(models, "status", IRIS)["live_performance"]  # the command reads the same log
        for arm in ("baseline", "candidate"):  # the same figures; only the window's length has grown
            assert {**by_command[arm], "window": None} == {**live[arm], "window": None}
    finally:
        cli(models, "abort", IRIS)
    for arm, version in (("baseline", baseline), ("candidate", candidate)):
        mine = [(body["Class"], actual) for _, body, actual in answered if body["ModelVersion"] == version]
        assert mine, f"the {arm} answered no row"
        assert live[arm]["labelled"] == len(mine)
        assert live[arm]["accuracy"] == pytest.approx(sum(c == a for c, a in mine) / len(mine))
