"""Versions under real gunicorn processes (4 workers) in a copy of the code with its own model
directory: first requests racing on an empty directory, hot switches under load (HTTP and CLI),
SIGKILL while a version is saved, a truncated artifact under each policy, a read-only directory.

Figures are printed (run with ``-s`` to see them); the assertions are about behaviour only.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from modeler.data import IRIS_FEATURES, IRIS_TARGET
from modeler.modeler import Modeler
from modeler.store import ARTIFACT_FILE, LOCK_FILE, METADATA_FILE, POINTER_FILE, VERSIONS_DIR, ModelStore
from tests.support import (
    SEED_ROW,
    Answer,
    clean_env,
    copy_project,
    free_port,
    gunicorn_args,
    running,
    truncate_artifact,
    wait_until_up,
    workers_by_request_id,
)

WORKERS = 4
ADMIN_KEY = "live-admin-key"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
# The promise under test: every worker serves a new current version within this many seconds.
FOLLOW_WITHIN = 1.0
SWITCHES = 20
SWITCH_GAP = 1.3  # seconds between switches: room for the FOLLOW_WITHIN window and some after


def saved(model_dir: Path) -> list[str]:
    path = model_dir / VERSIONS_DIR
    return sorted(p.name for p in path.iterdir() if not p.name.startswith(".")) if path.is_dir() else []


def pointer(model_dir: Path) -> str:
    return (model_dir / POINTER_FILE).read_text().strip()


def strays(model_dir: Path) -> list[str]:
    return sorted(str(p.relative_to(model_dir)) for p in model_dir.rglob(".tmp-*"))


# -- 64 concurrent first requests on an empty model directory -------------------------------

CONFIGS = {
    # As shipped: preload_app and a warm-up in the master, which trains before forking.
    "shipped-preload": {},
    # Each worker imports the app itself and makes the model ready on its first request: the
    # four workers race for the file lock.
    "no-preload-first-requests": {"MLDEPLOY_PRELOAD": "0", "MLDEPLOY_WARMUP": "false"},
    # Each worker warms up in a background thread at boot: the race happens at start.
    "no-preload-warmup-threads": {"MLDEPLOY_PRELOAD": "0"},
}


def wait_for_all_workers(base: str, access_log: Path, timeout: float = 60.0) -> int:
    """Call /health until every worker has answered one (they boot at their own pace)."""
    counter = itertools.count()
    deadline = time.monotonic() + timeout
    pids: set[int] = set()
    with ThreadPoolExecutor(8) as pool:
        while time.monotonic() < deadline:
            ids = [f"health-{next(counter)}" for _ in range(16)]
            list(pool.map(lambda i: requests.get(f"{base}/health", headers={"X-Request-Id": i}, timeout=30), ids))
            pids = set(workers_by_request_id(access_log).values())
            if len(pids) == WORKERS:
                break
            time.sleep(0.1)
    return len(pids)


@pytest.mark.parametrize("config", list(CONFIGS))
def test_64_concurrent_first_requests_on_an_empty_dir_train_exactly_once(tmp_path: Path, config: str) -> None:
    project = copy_project(tmp_path)
    model_dir = project / "models"
    port, access = free_port(), tmp_path / "access.log"
    env = clean_env(MLDEPLOY_MODEL_DIR=str(model_dir), **CONFIGS[config])
    barrier = threading.Barrier(64)

    def first(i: int) -> tuple[int, dict]:
        barrier.wait()
        res = requests.post(f"{base}/predict", json=SEED_ROW, headers={"X-Request-Id": f"first-{i}"}, timeout=120)
        return res.status_code, res.json()

    with running(gunicorn_args(port, WORKERS, access), project, port, env, log=tmp_path / "server.log") as (base, _):
        booted = wait_for_all_workers(base, access)
        empty_before = saved(model_dir) == []
        with ThreadPoolExecutor(64) as pool:
            answers = list(pool.map(first, range(64)))
    by_request = workers_by_request_id(access, expect=(f"first-{i}" for i in range(64)))
    pids = Counter(by_request[f"first-{i}"] for i in range(64))
    statuses = Counter(status for status, _ in answers)
    classes = Counter(body.get("Class") for _, body in answers)
    versions = Counter(body.get("ModelVersion") for _, body in answers)
    print(
        f"\n[{config}] workers booted={booted} dir empty when the burst started={empty_before} "
        f"statuses={dict(statuses)} classes={dict(classes)} versions in answers={len(versions)} "
        f"saved versions={len(saved(model_dir))} answers per worker={sorted(pids.values())}"
    )
    assert statuses == {200: 64}
    assert classes == {"setosa": 64}
    assert len(versions) == 1
    assert saved(model_dir) == list(versions)  # exactly one training
    if config == "no-preload-first-requests":
        # Nobody trained before the burst, and several workers made the model ready concurrently.
        assert empty_before and booted == WORKERS and len(pids) >= 2


# -- hot switches under load -----------------------------------------------------------------


class PredictClient:
    """Threads that POST /predict in a loop until the block ends, recording every answer."""

    def __init__(self, base: str, threads: int, tag: str) -> None:
        self.base, self.threads, self.tag = base, threads, tag
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._pool: list[threading.Thread] = []

    def _loop(self, n: int) -> None:
        session = requests.Session()
        for i in itertools.count():
            if self._stop.is_set():
                return
            request_id = f"{self.tag}-{n}-{i}"
            sent = time.monotonic()
            try:
                # A new connection per request: a kept-alive one would stay with one worker, and
                # every worker must be seen following the switches.
                headers = {"X-Request-Id": request_id, "Connection": "close"}
                res = session.post(f"{self.base}/predict", json=SEED_ROW, headers=headers, timeout=30)
                status, version = res.status_code, res.json().get("ModelVersion")
            except (requests.RequestException, ValueError):
                status, version = 0, None  # a refused or broken connection counts as an error
            self.answers.append(Answer(request_id, sent, time.monotonic(), status, version))

    def __enter__(self) -> PredictClient:
        self._pool = [threading.Thread(target=self._loop, args=(n,), daemon=True) for n in range(self.threads)]
        for thread in self._pool:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._pool:
            thread.join(60)

    def tally(self) -> dict:
        return {
            "requests": len(self.answers),
            "errors": sum(a.status != 200 for a in self.answers),
            "versions seen": dict(Counter(a.version for a in self.answers)),
        }


@dataclass(frozen=True)
class Served:
    base: str
    project: Path
    model_dir: Path
    access_log: Path
    versions: tuple[str, str]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """gunicorn (shipped config, 4 workers) with two versions: the master trains the first at
    start, the admin endpoint trains the second (max_depth=1)."""
    root = tmp_path_factory.mktemp("switch")
    project = copy_project(root)
    model_dir = project / "models"
    port, access = free_port(), root / "access.log"
    env = clean_env(MLDEPLOY_MODEL_DIR=str(model_dir), MLDEPLOY_ADMIN_KEY=ADMIN_KEY)
    with running(gunicorn_args(port, WORKERS, access), project, port, env, log=root / "server.log") as (base, _):
        first = requests.get(f"{base}/ready", timeout=60).json()["ModelVersion"]
        res = requests.post(f"{base}/model/train", json={"params": {"max_depth": 1}}, headers=AUTH, timeout=60)
        assert res.status_code == 201, res.text
        yield Served(base, project, model_dir, access, (first, res.json()["version"]))


def test_hammer_predict_while_switching_20_times(served: Served) -> None:
    a, b = served.versions
    switches: list[tuple[float, str]] = []  # (when the activate call started, target)
    with PredictClient(served.base, threads=4, tag="hammer") as client:
        time.sleep(0.5)
        for i in range(SWITCHES):
            target = a if i % 2 == 0 else b
            started = time.monotonic()
            res = requests.post(f"{served.base}/model/activate", json={"version": target}, headers=AUTH, timeout=30)
            assert res.status_code == 200 and res.json()["version"] == target, res.text
            switches.append((started, target))
            time.sleep(SWITCH_GAP)
    worker_of = workers_by_request_id(served.access_log, expect=(x.request_id for x in client.answers if x.status))
    late_stale, lag, followed = [], defaultdict(float), defaultdict(set)
    for i, (started, target) in enumerate(switches):
        next_started = switches[i + 1][0] if i + 1 < len(switches) else float("inf")
        # Answers started after this switch began and finished before the next one began.
        for answer in (x for x in client.answers if x.sent >= started and x.done < next_started):
            pid = worker_of.get(answer.request_id, 0)  # 0: never reached a worker (counted as an error)
            if answer.version != target:
                lag[pid] = max(lag[pid], answer.sent - started)
                if answer.sent >= started + FOLLOW_WITHIN:
                    late_stale.append((i, pid, answer))
            elif answer.sent >= started + FOLLOW_WITHIN:
                followed[pid].add(i)
    tally = client.tally()
    per_worker = Counter(worker_of.get(x.request_id, 0) for x in client.answers)
    print(
        f"\n[hammer] {SWITCHES} switches, {tally}, answers per worker={sorted(per_worker.values())}, "
        f"latest stale answer after a switch per worker (s)={sorted(round(v, 3) for v in lag.values())}, "
        f"switches each worker was seen to follow={sorted(len(v) for v in followed.values())}, "
        f"stale answers started >= {FOLLOW_WITHIN} s after a switch={len(late_stale)}"
    )
    assert tally["errors"] == 0
    assert set(tally["versions seen"]) == {a, b}
    assert late_stale == []
    assert len(per_worker) == WORKERS and len(followed) == WORKERS  # every worker was seen following


def test_cli_rollback_while_a_client_calls_predict(served: Served) -> None:
    versions = requests.get(f"{served.base}/model/versions", timeout=30).json()
    current = versions["current"]
    target = next(v for v in served.versions if v != current)
    command = [sys.executable, "-m", "mldeploy", "activate", target]
    env = clean_env(MLDEPLOY_MODEL_DIR=str(served.model_dir))
    with PredictClient(served.base, threads=2, tag="cli") as client:
        time.sleep(1.0)
        started = time.monotonic()
        cli = subprocess.run(command, cwd=served.project, env=env, capture_output=True, text=True, timeout=120)
        finished = time.monotonic()
        time.sleep(2.0)
    # When the pointer was replaced, on the monotonic clock the answers use.
    switched = (served.model_dir / POINTER_FILE).stat().st_mtime - time.time() + time.monotonic()
    stale = [x for x in client.answers if x.version != target and x.sent >= switched]
    after = [x for x in client.answers if x.sent >= finished + FOLLOW_WITHIN]
    tally = client.tally()
    latest = max((x.sent - switched for x in stale), default=0)
    print(
        f"\n[CLI rollback] `python -m mldeploy activate {target}` (from {current}) ran {finished - started:.2f} s "
        f"(interpreter start and imports included); client tally: {tally}; old-version answers started after "
        f"the pointer switch: {len(stale)}, the latest {latest:.3f} s after it"
    )
    assert cli.returncode == 0, cli.stderr
    assert tally["errors"] == 0
    assert set(tally["versions seen"]) == {current, target}
    assert after and all(x.version == target for x in after)


# -- SIGKILL while a version is being saved ---------------------------------------------------

# Where each round kills the server, watched from outside on the model directory.
KILL_MOMENTS = ("training", "temp-dir", "artifact", "metadata", "renamed")
# Trains a round may start before its moment is seen (each one that slips past saves a version).
MOMENT_TRIES = 5


def lock_held(lock_path: Path) -> bool:
    """Whether a writer holds the training lock (probed without blocking, released at once)."""
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


def moment_reached(moment: str, model_dir: Path, before: set[str]) -> bool:
    versions = model_dir / VERSIONS_DIR
    entries = os.listdir(versions)
    temps = [e for e in entries if e.startswith(".tmp-")]
    if moment == "training":
        return not temps and lock_held(model_dir / LOCK_FILE)
    if moment == "temp-dir":
        return bool(temps)
    if moment in ("artifact", "metadata") and temps:
        try:
            inside = os.listdir(versions / temps[0])
        except FileNotFoundError:
            return False
        return (ARTIFACT_FILE if moment == "artifact" else METADATA_FILE) in inside
    return moment == "renamed" and bool({e for e in entries if not e.startswith(".")} - before)


def moment_seen(moment: str, model_dir: Path, before: set[str], trainer: threading.Thread) -> bool:
    """Poll until ``moment`` of the save is reached (True), or the train has answered without it
    being seen (False): the later moments last a few milliseconds, and on a loaded machine this
    poll can be off the CPU for all of them."""
    deadline = time.monotonic() + 60
    while not moment_reached(moment, model_dir, before):
        if not trainer.is_alive():
            return moment_reached(moment, model_dir, before)
        assert time.monotonic() < deadline, f"the train neither answered nor reached {moment!r}"
    return True


def what_the_kill_left(model_dir: Path, before: set[str], old_current: str) -> str:
    temp_dirs = [p for p in (model_dir / VERSIONS_DIR).iterdir() if p.name.startswith(".tmp-")]
    if temp_dirs:
        parts = {p.name: p.stat().st_size for p in temp_dirs[0].iterdir()}
        return f"mid-save: a temp version dir holding {parts or 'nothing yet'}"
    if list(model_dir.glob(".tmp-*")):
        return "mid-switch: a temp pointer file"
    if not set(saved(model_dir)) - before:
        return "before any file was written (training)"
    if pointer(model_dir) == old_current:
        return "new version complete, pointer not yet switched"
    return "after the pointer switch"


def random_training_csv(path: Path, rows: int = 20_000) -> Path:
    """Iris-shaped data with random labels: a tree of ~1 MB whose save takes a few ms to write."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.uniform(0, 8, size=(rows, 4)), columns=list(IRIS_FEATURES))
    frame[IRIS_TARGET] = rng.choice(["setosa", "versicolor", "virginica"], rows)
    frame.to_csv(path, index=False)
    return path


@contextlib.contextmanager
def gunicorn_group(project: Path, env: dict[str, str], log: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """gunicorn in its own process group, so one killpg reaches the master and every worker."""
    port = free_port()
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, *gunicorn_args(port, WORKERS)],
            cwd=project,
            env=env,
            stdout=out,
            stderr=out,
            start_new_session=True,
        )
        try:
            wait_until_up(f"http://127.0.0.1:{port}/health", proc, timeout=120)
            yield f"http://127.0.0.1:{port}", proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(30)


def train_ignoring_the_kill(base: str) -> None:
    with contextlib.suppress(requests.RequestException):  # the server dies before it answers
        requests.post(f"{base}/model/train", headers=AUTH, timeout=60)


def assert_start_serves_and_cleans(base: str, model_dir: Path) -> str:
    ready = requests.get(f"{base}/ready", timeout=60)
    assert ready.status_code == 200, ready.text
    answer = requests.post(f"{base}/predict", json=SEED_ROW, timeout=60)
    assert answer.status_code == 200, answer.text
    assert answer.json()["ModelVersion"] == pointer(model_dir)
    assert strays(model_dir) == []
    return answer.json()["ModelVersion"]


def test_sigkill_while_saving_leaves_the_current_version_intact(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    model_dir = project / "models"
    data = random_training_csv(tmp_path / "train.csv")
    env = clean_env(MLDEPLOY_MODEL_DIR=str(model_dir), MLDEPLOY_DATA=str(data), MLDEPLOY_ADMIN_KEY=ADMIN_KEY)
    log = tmp_path / "server.log"
    landings = []
    for moment in KILL_MOMENTS:
        with gunicorn_group(project, env, log) as (base, proc):
            assert_start_serves_and_cleans(base, model_dir)
            for _ in range(MOMENT_TRIES):
                old_current, before = pointer(model_dir), set(saved(model_dir))
                trainer = threading.Thread(target=train_ignoring_the_kill, args=(base,), daemon=True)
                trainer.start()
                if moment_seen(moment, model_dir, before, trainer):
                    break
                trainer.join(60)  # the train slipped past the moment unseen: train again
            else:
                pytest.fail(f"never saw the moment {moment!r} in {MOMENT_TRIES} trains")
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        trainer.join(60)
        landings.append((moment, what_the_kill_left(model_dir, before, old_current)))
        # The current version is intact, and no partial version is listed.
        current = Modeler(model_dir, lazy_train=False).load().version
        assert current in before or landings[-1][1] == "after the pointer switch"
        store = ModelStore(model_dir)
        for meta in store.list_versions():
            store.load(meta["version"])
    with gunicorn_group(project, env, log) as (base, _):  # the next start serves and cleans up
        assert_start_serves_and_cleans(base, model_dir)
    print("\n[SIGKILL] " + "; ".join(f"round {i + 1} kill at {m!r} -> {left}" for i, (m, left) in enumerate(landings)))
    assert any(left.startswith("mid-save") for _, left in landings)  # the kills did land mid-write


# -- a truncated artifact under each policy -------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "preload"),
    [("retrain", "1"), ("retrain", "0"), ("fail", "1")],
    ids=["retrain", "retrain-no-preload", "fail"],
)
def test_truncated_artifact_under_gunicorn(tmp_path: Path, policy: str, preload: str) -> None:
    project = copy_project(tmp_path)
    model_dir = project / "models"
    broken = Modeler(model_dir).fit().version
    truncate_artifact(model_dir, broken)
    port = free_port()
    env = clean_env(MLDEPLOY_MODEL_DIR=str(model_dir), MLDEPLOY_ON_CORRUPT=policy, MLDEPLOY_PRELOAD=preload)
    with running(gunicorn_args(port, WORKERS), project, port, env, log=tmp_path / "server.log") as (base, _):
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda _: requests.post(f"{base}/predict", json=SEED_ROW, timeout=60), range(32)))
        ready = requests.get(f"{base}/ready", timeout=60)
    statuses = Counter(a.status_code for a in answers)
    versions = Counter(a.json().get("ModelVersion") for a in answers)
    print(
        f"\n[truncated artifact, {policy}, preload={preload}] /predict statuses={dict(statuses)} "
        f"/ready={ready.status_code} {ready.json().get('message', '')[:90]!r} saved versions={len(saved(model_dir))}"
    )
    assert all(a.headers["Content-Type"] == "application/json" for a in [*answers, ready])
    if policy == "retrain":
        assert statuses == {200: 32} and ready.status_code == 200
        assert len(versions) == 1 and broken not in versions
        assert saved(model_dir) == sorted([broken, *versions])  # exactly one retraining
        assert pointer(model_dir) in versions
    else:
        assert statuses == {503: 32} and ready.status_code == 503
        assert all("sha256" in a.json()["message"] and a.headers["Retry-After"] for a in [*answers, ready])
        assert saved(model_dir) == [broken] and pointer(model_dir) == broken


# -- a read-only model directory ------------------------------------------------------------


def unprivileged_prefix() -> list[str] | None:
    """How to run a process that file permissions bind: as is when we are not root, else as
    ``nobody`` through setpriv (root ignores a directory's write bits). None when impossible."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        return None
    if setpriv is None:
        return None
    return [setpriv, f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}", "--clear-groups"]


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A temp dir another user can read (pytest's own are private to root)."""
    path = Path(tempfile.mkdtemp(prefix="mldeploy-readonly-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_read_only_model_dir_serves_and_refuses_to_train(world_readable_dir: Path, tmp_path: Path) -> None:
    prefix = unprivileged_prefix()
    if prefix is None:
        pytest.skip("running as root without setpriv/nobody: cannot make a directory read-only for the server")
    project = copy_project(world_readable_dir)
    model_dir = project / "models"
    version = Modeler(model_dir).fit().version
    (model_dir / VERSIONS_DIR / ".tmp-left-by-a-crash").mkdir()
    model_dir.chmod(0o555)
    (model_dir / VERSIONS_DIR).chmod(0o555)
    probe = subprocess.run(
        [*prefix, sys.executable, "-c", f"import os, flask, sklearn; print(os.access({str(model_dir)!r}, os.W_OK))"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode != 0:
        pytest.skip(f"the interpreter cannot run as an unprivileged user here: {probe.stderr.strip()[-200:]}")
    assert probe.stdout.strip() == "False"  # the directory really is read-only for the server
    port = free_port()
    env = clean_env(MLDEPLOY_MODEL_DIR=str(model_dir), MLDEPLOY_ADMIN_KEY=ADMIN_KEY)
    args, log = gunicorn_args(port, WORKERS), tmp_path / "server.log"
    with running(args, project, port, env, log=log, prefix=prefix) as (base, _):
        answer = requests.post(f"{base}/predict", json=SEED_ROW, timeout=60)
        train = requests.post(f"{base}/model/train", headers=AUTH, timeout=60)
        activate = requests.post(f"{base}/model/activate", json={"version": version}, headers=AUTH, timeout=60)
        listed = requests.get(f"{base}/model/versions", timeout=60)
    cli = subprocess.run(
        [*prefix, sys.executable, "-m", "mldeploy", "train"], cwd=project, env=env, capture_output=True, text=True
    )
    print(
        f"\n[read-only, as uid {'nobody' if prefix else os.geteuid()}] /predict={answer.status_code} "
        f"/model/train={train.status_code} {train.json()['message']!r} /model/activate={activate.status_code} "
        f"CLI train exit={cli.returncode} {cli.stderr.strip()!r}"
    )
    assert answer.status_code == 200 and answer.json()["ModelVersion"] == version
    assert train.status_code == 409 and "read-only" in train.json()["message"]
    assert activate.status_code == 409 and "read-only" in activate.json()["message"]
    assert listed.json()["current"] == version
    assert cli.returncode == 1 and "read-only" in cli.stderr
    assert saved(model_dir) == [version]
    assert (model_dir / VERSIONS_DIR / ".tmp-left-by-a-crash").is_dir()  # left alone, and no crash over it
