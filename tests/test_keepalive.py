"""Persistent HTTP/1.1 connections under ``python -m mldeploy serve`` (gunicorn's gthread worker,
the default): a connection carries many requests, metrics stay exact across 2 workers with
threads (a dead worker's counts kept, its live gauges dropped), SIGTERM under keep-alive load
drops nothing, and MLDEPLOY_WORKER_CLASS=sync still closes every connection after its answer.

Bounded load on 127.0.0.1 only."""

from __future__ import annotations

import argparse
import collections
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from mldeploy.cli.serve import gunicorn_argv, gunicorn_environ, register
from mldeploy.settings import WORKER_CLASSES
from tests.support import (
    GUNICORN_CONF,
    REPO,
    SEED_ROW,
    InFlight,
    clean_env,
    copy_project,
    free_port,
    metric_value,
    running,
    sigterm_under_load,
)

BODY = json.dumps(SEED_ROW).encode()
JSON = {"Content-Type": "application/json"}
CLIENTS = 8
PER_CLIENT = 25
# A request whose body never comes in full (Content-Length 100): it holds a thread reading it.
HUNG_HEAD = "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"


def serve(project: Path, port: int, log: Path, **settings: str):
    """``python -m mldeploy serve --workers 2`` on ``port`` in the copy ``project``."""
    argv = ["-m", "mldeploy", "serve", "--workers", "2", "--port", str(port)]
    return running(argv, project, port, env=clean_env(**settings), log=log)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path, int]]:
    """The default server; yields (port, log file, master PID)."""
    project = copy_project(tmp_path_factory.mktemp("keepalive"))
    port = free_port()
    log = project / "server.log"
    with serve(project, port, log) as (base, proc):
        requests.post(f"{base}/predict", json=SEED_ROW, timeout=60)  # the model is ready
        yield port, log, proc.pid


def predict(conn: http.client.HTTPConnection, request_id: str) -> http.client.HTTPResponse:
    """One POST /predict on ``conn``, its answer read in full."""
    conn.request("POST", "/predict", body=BODY, headers={**JSON, "X-Request-ID": request_id})
    response = conn.getresponse()
    response.body = response.read()
    return response


def pids_by_request_id(log: Path, ids: set[str], timeout: float = 10.0) -> dict[str, int]:
    """``{request id: worker pid}`` from the JSON request lines (written just after each answer)."""
    deadline = time.monotonic() + timeout
    while True:
        found = {
            line["request_id"]: line["pid"]
            for line in map(json.loads, log.read_text().splitlines())
            if line.get("request_id") in ids
        }
        if found.keys() >= ids or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def worker_pids(master: int) -> list[int]:
    """The master's children (its workers), from /proc."""
    children = []
    for task in Path(f"/proc/{master}/task").iterdir():
        children += [int(pid) for pid in (task / "children").read_text().split()]
    return children


def sample(port: int, name: str, **labels: str) -> float:
    return metric_value(requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text, name, **labels)


def test_one_connection_carries_many_requests_to_one_worker(server) -> None:
    port, log, _ = server
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    ids = [f"ka-{uuid.uuid4().hex[:10]}" for _ in range(5)]
    try:
        answers, local_ports = [], set()
        for rid in ids:
            answers.append(predict(conn, rid))
            local_ports.add(conn.sock.getsockname()[1])  # http.client reconnects on its own: check it did not
        assert [a.status for a in answers] == [200] * len(ids)
        assert all(json.loads(a.body)["Class"] == "setosa" for a in answers)
        assert not any(a.will_close for a in answers), "the server asked to close a keep-alive connection"
        assert len(local_ports) == 1, "the requests did not share one TCP connection"
    finally:
        conn.close()
    pids = pids_by_request_id(log, set(ids))
    assert len(pids) == len(ids) and len(set(pids.values())) == 1, "one connection, one worker"


def test_a_worker_with_every_thread_taken_leaves_new_connections_to_the_other(server) -> None:
    """Three requests that stop half-way through their bodies hold three of the four threads
    (2 workers of 2): a worker accepts only with a thread free, so every new connection reaches
    the one thread left and is answered. (gthread as it comes accepts on whichever worker wakes
    first, and a connection it takes behind two stuck threads waits for them.)"""
    port, _, _ = server
    stuck = [socket.create_connection(("127.0.0.1", port), timeout=30) for _ in range(3)]
    try:
        for sock in stuck:
            sock.sendall(HUNG_HEAD.encode() + b'{"sepal_length": ')  # and nothing more
            time.sleep(0.2)  # accepted, and its thread is reading the body
        for i in range(20):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            try:
                conn.request("POST", "/predict", body=BODY, headers={**JSON, "Connection": "close"})
                assert conn.getresponse().status == 200, f"request {i}"
            except TimeoutError:
                pytest.fail(f"request {i} waited behind a worker whose threads were all taken")
            finally:
                conn.close()
    finally:
        for sock in stuck:
            sock.close()


def test_metrics_are_exact_across_two_threaded_workers_and_survive_a_dead_worker(server) -> None:
    port, log, master = server
    predict_200 = {"endpoint": "/predict", "method": "POST", "status": "200"}
    before = sample(port, "mldeploy_http_requests_total", **predict_200)
    setosa_before = sample(port, "mldeploy_predictions_total", **{"class": "setosa"})

    def client(batch: list[str]) -> list[int]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            return [predict(conn, rid).status for rid in batch]
        finally:
            conn.close()

    # Which worker accepts a connection is the kernel's and the workers' race: one quick worker
    # can take all of a round's. Rounds go on (at most 5) until both workers answered some.
    sent: list[str] = []
    statuses: list[int] = []
    pids: set[int] = set()
    for _ in range(5):
        ids = [[f"m{c}-{n}-{uuid.uuid4().hex[:6]}" for n in range(PER_CLIENT)] for c in range(CLIENTS)]
        with ThreadPoolExecutor(CLIENTS) as pool:
            statuses += [s for batch in pool.map(client, ids) for s in batch]
        sent += [rid for batch in ids for rid in batch]
        pids = set(pids_by_request_id(log, set(sent)).values())
        if len(pids) == 2:
            break
    total = len(sent)
    assert statuses == [200] * total
    assert sample(port, "mldeploy_http_requests_total", **predict_200) - before == total
    assert sample(port, "mldeploy_predictions_total", **{"class": "setosa"}) - setosa_before == total
    assert len(pids) == 2, "the persistent connections did not reach both workers in 5 rounds"

    # A worker dies (SIGKILL: no clean-up of its own): gunicorn forks another; the dead one's
    # counts stay in the sums, and its live gauge (the served version) stops counting.
    counted = sample(port, "mldeploy_http_requests_total", **predict_200)
    victim = worker_pids(master)[0]
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while (victim in worker_pids(master) or len(worker_pids(master)) < 2) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert victim not in worker_pids(master) and len(worker_pids(master)) == 2, "the worker was not replaced"
    assert sample(port, "mldeploy_http_requests_total", **predict_200) == counted, "the dead worker's counts went"
    with ThreadPoolExecutor(CLIENTS) as pool:
        more = [s for batch in pool.map(client, [b[:2] for b in ids]) for s in batch]
    assert more == [200] * len(more)
    assert sample(port, "mldeploy_http_requests_total", **predict_200) == counted + len(more)
    version = requests.get(f"http://127.0.0.1:{port}/model", timeout=10).json()["version"]
    assert sample(port, "mldeploy_model_info", version=version) == 1


def test_sigterm_under_keep_alive_load_drops_nothing(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    port = free_port()
    log = project / "server.log"
    body = json.dumps([SEED_ROW] * 2_000).encode()  # long enough to be in flight at SIGTERM
    outcomes: list[tuple[str, str, float, float, bool]] = []  # id, result, started, ended, reused
    lock = threading.Lock()
    flight = InFlight()

    def client(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            requests_on(conn, index)
        finally:  # every request may succeed (SIGTERM came after the last): the socket is still ours
            conn.close()

    def requests_on(conn: http.client.HTTPConnection, index: int) -> None:
        reused = False
        for n in range(60):
            rid, started = f"k{index}-{n}", flight.begin(index)
            try:
                if conn.sock is None:
                    conn.connect()
                    reused = False
                conn.request("POST", "/predict", body=body, headers={**JSON, "X-Request-ID": rid})
                response = conn.getresponse()
                data = response.read()
                ok = response.status == 200 and len(json.loads(data)["Predictions"]) == 2_000
                result = "ok" if ok else f"bad answer {response.status}"
                if response.will_close:
                    conn.close()  # the server said so: the next request opens a new connection
            except ConnectionRefusedError:
                result = "refused"
            except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
                result = "reset-unanswered"
            except Exception as exc:  # anything else is a broken request
                result = f"{type(exc).__name__}: {exc}"
            ended = flight.end(index, result == "ok")
            with lock:
                outcomes.append((rid, result, started, ended, reused))
            if result != "ok":
                conn.close()
                return
            reused = conn.sock is not None

    with serve(project, port, log) as (_, proc):
        threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
        sigterm_at = sigterm_under_load(proc, threads, flight, 8)

    counts = collections.Counter(result for _, result, *_ in outcomes)
    print(dict(counts))  # shown with pytest -s
    assert set(counts) <= {"ok", "refused"}, [o for o in outcomes if o[1] not in ("ok", "refused")]
    in_flight = [o for o in outcomes if o[1] == "ok" and o[2] < sigterm_at < o[3]]
    assert in_flight, "no request was in flight at SIGTERM: the test proved nothing"
    assert any(o[4] for o in outcomes if o[1] == "ok"), "no request reused a connection"
    processed = {
        line["request_id"]
        for line in map(json.loads, log.read_text().splitlines())
        if line.get("logger") == "mldeploy.access"
    }
    assert not {o[0] for o in outcomes if o[1] != "ok"} & processed, "a processed request never reached its client"
    assert {o[0] for o in outcomes if o[1] == "ok"} <= processed


def test_the_sync_worker_still_closes_every_connection(tmp_path: Path) -> None:
    project = copy_project(tmp_path)
    port = free_port()
    with serve(project, port, project / "server.log", MLDEPLOY_WORKER_CLASS="sync") as _:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            response = predict(conn, "sync-1")
        finally:
            conn.close()
    assert response.status == 200 and response.will_close


def test_a_request_that_hangs_has_its_worker_replaced_after_the_timeout(tmp_path: Path) -> None:
    """A client that stops half-way through its body holds a thread: the worker's heartbeat
    pauses, and the master kills and replaces it after MLDEPLOY_WORKER_TIMEOUT (2 s here)."""
    project = copy_project(tmp_path)
    port = free_port()
    argv = ["-m", "mldeploy", "serve", "--workers", "1", "--port", str(port)]
    env = clean_env(MLDEPLOY_WORKER_TIMEOUT="2")
    with running(argv, project, port, env=env, log=project / "server.log") as (base, proc):
        assert requests.post(f"{base}/predict", json=SEED_ROW, timeout=60).status_code == 200
        (worker,) = worker_pids(proc.pid)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as stuck:
            stuck.sendall(HUNG_HEAD.encode() + b'{"sepal_length": ')  # and nothing more
            deadline = time.monotonic() + 30
            while worker in worker_pids(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert worker not in worker_pids(proc.pid), "the hung request's worker was never replaced"
            assert stuck.recv(100) == b"", "the hung request got an answer"
        # The new worker serves (and a request that finishes in time never paused the heartbeat).
        assert requests.post(f"{base}/predict", json=SEED_ROW, timeout=60).status_code == 200


def resolved_config(tmp_path: Path, **settings: str) -> dict[str, str]:
    """gunicorn's resolved settings with our config file and ``settings`` (the app is not loaded)."""
    argv = [sys.executable, "-m", "gunicorn", "--config", GUNICORN_CONF, "--print-config"]
    env = clean_env(PROMETHEUS_MULTIPROC_DIR=str(tmp_path), **settings)
    out = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    return {k.strip(): v.strip() for k, _, v in (line.partition("=") for line in out.splitlines()) if v}


@pytest.mark.parametrize(
    ("settings", "worker_class", "threads"),
    [
        ({}, WORKER_CLASSES["gthread"], "2"),
        ({"MLDEPLOY_THREADS": "4"}, WORKER_CLASSES["gthread"], "4"),
        # Threads would make gunicorn swap our sync worker for its own gthread: sync gets one.
        ({"MLDEPLOY_WORKER_CLASS": "sync", "MLDEPLOY_THREADS": "4"}, WORKER_CLASSES["sync"], "1"),
    ],
)
def test_worker_class_and_threads_reach_gunicorn(tmp_path: Path, settings, worker_class: str, threads: str) -> None:
    config = resolved_config(tmp_path, **settings)
    assert (config["worker_class"], config["threads"], config["keepalive"]) == (worker_class, threads, "5")


def test_serve_threads_goes_to_the_config_not_to_gunicorns_own_option() -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--threads", "3"])
    assert "--threads" not in gunicorn_argv(args)
    assert gunicorn_environ(args, {})["MLDEPLOY_THREADS"] == "3"
    with pytest.raises(SystemExit):
        parser.parse_args(["serve", "--threads", "0"])


def test_the_server_comparison_replaces_only_its_own_section_of_the_results(tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "bench"))
    import servers

    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n| a | b |\n\n## Soak\n\nrun 1\n")
    servers.write_section(f"{servers.HEADING}\n\nfirst\n", results)
    servers.write_section(f"{servers.HEADING}\n\nsecond\n", results)
    text = results.read_text()
    assert text == f"# Benchmark results\n\n| a | b |\n\n## Soak\n\nrun 1\n\n{servers.HEADING}\n\nsecond\n"
