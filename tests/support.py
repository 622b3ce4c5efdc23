"""Helpers for tests that run real processes: free ports, a served copy of the repository."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[1]
GUNICORN_CONF = "python:mldeploy.http.gunicorn_conf"
# gunicorn access-log line: worker pid and the client's X-Request-Id, to tell which worker answered.
ACCESS_FORMAT = "%(p)s %({x-request-id}i)s %(s)s"
SEED_ROW = {"sepal_length": 5.0, "sepal_width": 3.2, "petal_length": 1.5, "petal_width": 0.3}
# What a user's clone holds at run time: code only, models/ empty.
CODE = ("app.py", "mldeploy", "mldeploy_client", "modeler")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def copy_project(dest: Path) -> Path:
    """Copy the code into ``dest`` with an empty models/ folder, as in a fresh clone."""
    for name in CODE:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(src, dest / name)
    (dest / "models").mkdir()
    return dest


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without MLDEPLOY_* settings that could leak in, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLDEPLOY_")}
    env.update(extra)
    return env


def wait_until_up(url: str, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers; fail early if the process died."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering {url}")
        # A read timeout too: the socket is open while workers still import the app.
        with contextlib.suppress(requests.ConnectionError, requests.Timeout):
            requests.get(url, timeout=1)
            return
        time.sleep(0.1)
    raise TimeoutError(f"no answer from {url} within {timeout} s")


def wait_ready(url: str, timeout: float = 60.0) -> None:
    """Poll a readiness ``url`` until it answers 200."""
    deadline = time.monotonic() + timeout
    while requests.get(url, timeout=10).status_code != 200:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} not ready within {timeout} s")
        time.sleep(0.1)


def stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """Stop a process we started, by its PID: SIGTERM, then SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)


def gunicorn_args(port: int, workers: int = 4, access_log: Path | None = None) -> list[str]:
    """``python`` arguments for gunicorn with the repository's config on 127.0.0.1:``port``."""
    args = ["-m", "gunicorn", "--config", GUNICORN_CONF, "--workers", str(workers), "--bind", f"127.0.0.1:{port}"]
    if access_log is not None:
        args += ["--access-logfile", str(access_log), "--access-logformat", ACCESS_FORMAT]
    return args


def workers_by_request_id(access_log: Path, expect: Iterable[str] = (), timeout: float = 10.0) -> dict[str, int]:
    """``{X-Request-Id: worker pid}`` from an access log written with ACCESS_FORMAT, waiting up to
    ``timeout`` for the ``expect`` ids (a worker logs a request just after answering it)."""
    expected = set(expect)
    deadline = time.monotonic() + timeout
    while True:
        found = {}
        for line in access_log.read_text().splitlines():
            pid, request_id, _status = line.split(" ")
            if request_id != "-":
                found[request_id] = int(pid.strip("<>"))
        if expected <= found.keys() or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


@contextlib.contextmanager
def running(
    args: Sequence[str],
    cwd: Path,
    port: int,
    env: dict[str, str] | None = None,
    log: Path | None = None,
    prefix: Sequence[str] = (),
) -> Iterator[tuple[str, subprocess.Popen]]:
    """Run ``python *args`` in ``cwd`` until the block ends; yields ``(base_url, process)``.

    ``prefix`` goes before the interpreter, e.g. ``setpriv`` options to run as another user.
    """
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    proc = subprocess.Popen([*prefix, sys.executable, *args], cwd=cwd, env=env or clean_env(), stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base + "/health", proc)
        yield base, proc
    finally:
        stop(proc)
        if log:
            out.close()


# With this random_state the Iris tree's root split is petal_length <= 2.45 (with the default 0 it
# is petal_width <= 0.8: both separate setosa perfectly, and the seed breaks the tie). Tests that
# tell the classic petal_length story train with it and check the root first.
PETAL_LENGTH_SEED = 4


class InFlight:
    """What a SIGTERM load's client threads are doing: when each one's current request started,
    how long the answered ones took, and ``answered``, a semaphore released per answer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: dict[int, float] = {}  # client -> when its request in progress started
        self._took: list[float] = []
        self.answered = threading.Semaphore(0)

    def begin(self, client: int) -> float:
        """Client ``client`` sends a request now; returns the time (monotonic seconds)."""
        now = time.monotonic()
        with self._lock:
            self._current[client] = now
        return now

    def end(self, client: int, ok: bool) -> float:
        """Client ``client``'s request ended (``ok``: answered in full); returns the time."""
        now = time.monotonic()
        with self._lock:
            started = self._current.pop(client)
            if ok:
                self._took.append(now - started)
        if ok:
            self.answered.release()
        return now

    def in_app_for(self) -> float:
        """How long the oldest request still in progress has been going (0 when none is)."""
        with self._lock:
            return time.monotonic() - min(self._current.values()) if self._current else 0.0

    def typical(self) -> float:
        """The median time an answered request took."""
        with self._lock:
            return statistics.median(self._took)


def sigterm_under_load(proc: subprocess.Popen, clients: Sequence, flight: InFlight, before: int) -> float:
    """Start the ``clients`` threads, wait until ``before`` answers came, then until one request
    has been in progress for half the typical answer's time, SIGTERM ``proc``, join the clients
    and check that it exited cleanly; returns when the SIGTERM was sent (monotonic seconds).

    The clients go in step (their requests take the same time), so right after an answer the
    others may all be just sending theirs, not yet taken by the server: waiting until one is well
    under way is what makes "a request was in flight at SIGTERM" hold on a slow machine too.
    """
    for thread in clients:
        thread.start()
    for _ in range(before):
        assert flight.answered.acquire(timeout=60), "the load never got going"
    settle, deadline = flight.typical() / 2, time.monotonic() + 60
    while flight.in_app_for() < settle:
        assert time.monotonic() < deadline, "no request stayed in progress"
        time.sleep(0.0005)
    sigterm_at = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    for thread in clients:
        thread.join(120)
    assert proc.wait(60) == 0, "the server did not shut down cleanly"
    return sigterm_at


def truncate_artifact(model_dir: Path, version: str) -> None:
    """Cut a saved artifact in half, as a full disk or an interrupted copy would."""
    from modeler.store import ARTIFACT_FILE, VERSIONS_DIR

    artifact = Path(model_dir) / VERSIONS_DIR / version / ARTIFACT_FILE
    data = artifact.read_bytes()
    artifact.write_bytes(data[: len(data) // 2])


def pretend_saved_with(model_dir: Path, version: str, sklearn_version: str) -> None:
    """Rewrite a version's metadata as if another scikit-learn had saved it."""
    import json

    from modeler.store import METADATA_FILE, VERSIONS_DIR

    path = Path(model_dir) / VERSIONS_DIR / version / METADATA_FILE
    meta = json.loads(path.read_text())
    meta["environment"]["sklearn"] = sklearn_version
    path.write_text(json.dumps(meta))


def run_cli(models: Path, *args: str, timeout: float = 300, **settings: str) -> subprocess.CompletedProcess:
    """``python -m mldeploy *args`` in a real process, on the model directory ``models``, with
    ``settings`` as more environment variables (``MLDEPLOY_DATA=...``)."""
    return subprocess.run(
        [sys.executable, "-m", "mldeploy", *args],
        cwd=REPO,
        env=clean_env(MLDEPLOY_MODEL_DIR=str(models), **settings),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus exposition ``text`` (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


@dataclass(frozen=True)
class Answer:
    """One request of a load test: its id, when it was sent and answered (monotonic seconds), the
    status, the ModelVersion that answered, and the error when it failed."""

    request_id: str
    sent: float
    done: float
    status: int
    version: str | None
    error: str | None = None


def exposed_names(app) -> set[str]:  # app: flask.Flask
    """Sample names of ``app``'s /metrics once every family has a sample: a prediction, one out
    of its training range, a bad request, and ground truth for the prediction (written to the
    prediction log first, so that the live accuracy and drift gauges have rows)."""
    from prometheus_client.parser import text_string_to_metric_families

    from mldeploy.monitoring import recording

    client = app.test_client()
    res = client.post("/predict", json=SEED_ROW)
    assert res.status_code == 200
    assert client.post("/predict", json={**SEED_ROW, "petal_length": 99.0}).status_code == 200
    assert client.post("/predict", json={"sepal_length": 5.0}).status_code == 400
    assert recording.prediction_log_of(app).flush(30)
    feedback = {"request_id": res.headers["X-Request-ID"], "actual": res.get_json()["Class"]}
    assert client.post("/feedback", json=feedback).status_code == 200
    res = client.get("/metrics")
    assert res.status_code == 200
    return {s.name for family in text_string_to_metric_families(res.get_data(as_text=True)) for s in family.samples}
