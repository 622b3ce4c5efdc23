"""The side-by-side benchmark: mldeploy, the per-request-Modeler baseline and the framework floor,
each under gunicorn with 2 workers (the production worker class) on 127.0.0.1, plus in-process single predictions.

Prints a table and the ratios against the targets, and writes both to bench/RESULTS.md.
Every load run is bounded in time (wrk -d) and in count (BENCH_MAX_REQUESTS responses).

    bash bench/run.sh                  # or: make bench
    BENCH_SECONDS=2 BENCH_ROUNDS=1 bash bench/run.sh  # a shorter run
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import timeit
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from statistics import median

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from modeler.data import IRIS_FEATURES, iris_frame  # noqa: E402

HOST = "127.0.0.1"
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
# Each load figure is the median of this many runs, interleaved across the servers.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
MAX_REQUESTS = int(os.environ.get("BENCH_MAX_REQUESTS", "200000"))
# BENCH_LOG_PREDICTIONS=0 measures mldeploy with its prediction log off (default: the service's
# default, on), to tell the log's cost from the rest (bench/prediction_log.py measures it alone).
LOG_SETTING = (
    {"MLDEPLOY_LOG_PREDICTIONS": os.environ["BENCH_LOG_PREDICTIONS"]} if "BENCH_LOG_PREDICTIONS" in os.environ else {}
)
START_TIMEOUT = 120.0
SEED_ROW = {"sepal_length": 5.0, "sepal_width": 3.2, "petal_length": 1.5, "petal_width": 0.3}
BATCH_SIZES = (1_000, 10_000)
RESULTS = BENCH / "RESULTS.md"

MLDEPLOY, BASELINE, FLOOR = "mldeploy", "baseline", "floor"
BATCH_HEADERS = ("Connection: close",)
SERVERS = (MLDEPLOY, BASELINE, FLOOR)


# -- processes ------------------------------------------------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """How to start one server, and its running process."""

    name: str
    argv: list[str]
    cwd: Path
    env: dict[str, str]
    port: int
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.argv, cwd=self.cwd, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def stop(self) -> None:
        """SIGTERM to the gunicorn master we started (it stops its workers), SIGKILL if it lingers."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def production_worker_class() -> str:
    """The worker class the servers run under: the service's default (their environment has no
    MLDEPLOY_* variable), which bench/gunicorn_bench.conf.py gives the floor and baseline too."""
    from mldeploy.settings import Settings

    return Settings().worker_class


def log_setting_text() -> str:
    """How mldeploy's prediction log was set for this run, for the results' header."""
    if LOG_SETTING:
        return "as set: MLDEPLOY_LOG_PREDICTIONS=" + LOG_SETTING["MLDEPLOY_LOG_PREDICTIONS"]
    return "at its default (on)"


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLDEPLOY_", "BENCH_", "WEB_CONCURRENCY"))}
    env.update(extra)
    return env


def make_servers(work: Path) -> dict[str, Server]:
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", str(BENCH / "gunicorn_bench.conf.py"), "--chdir", str(BENCH)]
    servers = {}
    port = free_port()
    servers[MLDEPLOY] = Server(
        MLDEPLOY,
        [sys.executable, "-m", "mldeploy", "serve", "--workers", "2", "--host", HOST, "--port", str(port)],
        REPO,
        base_env(MLDEPLOY_MODEL_DIR=str(work / "mldeploy-models"), **LOG_SETTING),
        port,
    )
    port = free_port()
    servers[BASELINE] = Server(
        BASELINE,
        [*gunicorn, "--bind", f"{HOST}:{port}", "baseline_app:app"],
        BENCH,
        base_env(BENCH_IRIS_CSV=str(work / "iris.csv"), BENCH_TUTORIAL_MODEL=str(work / "tutorial-model.joblib")),
        port,
    )
    port = free_port()
    servers[FLOOR] = Server(FLOOR, [*gunicorn, "--bind", f"{HOST}:{port}", "floor_app:app"], BENCH, base_env(), port)
    return servers


def post(port: int, body: bytes, timeout: float = 30.0) -> tuple[int, dict]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request("POST", "/predict", body, {"Content-Type": "application/json"})
        res = conn.getresponse()
        return res.status, json.loads(res.read())
    finally:
        conn.close()


def cold_start(server: Server) -> float:
    """Seconds from process start to the first correct answer to the seed row."""
    body = json.dumps(SEED_ROW).encode()
    start = time.perf_counter()
    server.start()
    while time.perf_counter() - start < START_TIMEOUT:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}")
        with contextlib.suppress(OSError):
            status, answer = post(server.port, body)
            if status == 200 and answer.get("Class") == "setosa":
                return time.perf_counter() - start
        time.sleep(0.005)
    raise TimeoutError(f"{server.name} gave no correct answer within {START_TIMEOUT} s")


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, from /proc/<pid>/task/*/children."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            with contextlib.suppress(OSError):
                todo.extend(int(c) for c in (task / "children").read_text().split())
    return pids


def pss_mib(pid: int) -> float:
    """Proportional set size of a process tree (shared pages split among the sharers), in MiB."""
    total_kib = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kib += int(line.split()[1])
    return total_kib / 1024


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by a process tree (live processes only)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for p in process_tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / ticks


# -- load ----------------------------------------------------------------------------------


def wrk(
    port: int, body_file: Path, connections: int, server_pid: int | None = None, headers: tuple[str, ...] = ()
) -> dict:
    """One bounded wrk run of POSTs of ``body_file``; returns its summary, with the server's CPU
    seconds per request when ``server_pid`` is given (a figure the machine's other load barely moves).
    ``headers`` (``"Name: value"``) go with every request."""
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{SECONDS:g}s",
        *(arg for header in headers for arg in ("-H", header)),
        "--timeout",
        "10s",
        "-s",
        str(BENCH / "post.lua"),
        f"http://{HOST}:{port}/predict",
    ]
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_MAX_REQUESTS": str(MAX_REQUESTS)}
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=SECONDS + 60, check=True).stdout
    line = next(li for li in out.splitlines() if li.startswith("BENCH "))
    summary = json.loads(line[len("BENCH ") :])
    errors = sum(summary[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    summary["errors"] = errors
    summary["rps"] = summary["requests"] / (summary["duration_us"] / 1e6)
    if server_pid:
        summary["cpu_per_request"] = (cpu_seconds(server_pid) - cpu_before) / max(summary["requests"], 1)
    return summary


def batch_rows(n: int, seed: int = 0) -> np.ndarray:
    """``n`` Iris-like rows: real rows with a little noise, two decimals, kept inside the range
    of the data (rows outside the training range get warnings, which is not the common case)."""
    rng = np.random.default_rng(seed)
    iris = iris_frame()[list(IRIS_FEATURES)].to_numpy()
    noisy = iris[rng.integers(0, len(iris), n)] + rng.normal(0, 0.1, (n, 4))
    return np.round(np.clip(noisy, iris.min(axis=0), iris.max(axis=0)), 2)


def bodies(work: Path) -> dict[str, Path]:
    """Request bodies on disk, for wrk: the seed row and each batch form and size."""
    files = {"single": work / "single.json"}
    files["single"].write_text(json.dumps(SEED_ROW))
    for n in BATCH_SIZES:
        rows = batch_rows(n).tolist()
        records = [dict(zip(IRIS_FEATURES, r, strict=True)) for r in rows]
        forms = {
            "records": records,
            "instances": {"instances": records},
            "columnar": {"columns": list(IRIS_FEATURES), "data": rows},
        }
        for form, body in forms.items():
            files[f"{form}-{n}"] = path = work / f"{form}-{n}.json"
            path.write_text(json.dumps(body))
    return files


def batch_answered(port: int, body_file: Path, rows: int) -> bool:
    """Whether the server scores this batch form correctly (one prediction per row)."""
    status, answer = post(port, body_file.read_bytes(), timeout=120)
    if status != 200 or len(answer.get("Predictions", [])) != rows:
        log(f"{body_file.name}: answered {status} {str(answer)[:200]}; not measured")
        return False
    return True


# -- in-process ------------------------------------------------------------------------------


def per_call_us(fn: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(fn, number=number, repeat=5)) / number * 1e6


def in_process(model_dir: Path) -> dict[str, float]:
    """Microseconds per call: Modeler.predict on one dict, sklearn's predict on a 1x4 array."""
    from modeler.modeler import Modeler

    modeler = Modeler(model_dir, lazy_train=False)
    estimator = modeler.ensure_ready().estimator
    array = np.array([list(SEED_ROW.values())])
    assert modeler.predict(SEED_ROW) == estimator.predict(array)[0] == "setosa"
    with warnings.catch_warnings():
        # sklearn warns that a bare array has no feature names; the warning is not what we time.
        warnings.simplefilter("ignore", UserWarning)
        sklearn_us = per_call_us(lambda: estimator.predict(array), 2_000)
    return {"modeler_us": per_call_us(lambda: modeler.predict(SEED_ROW), 100_000), "sklearn_us": sklearn_us}


# -- report ------------------------------------------------------------------------------


@dataclass
class Target:
    label: str
    value: float
    goal: float
    higher_is_better: bool
    unit: str = "x"

    @property
    def met(self) -> bool:
        return self.value >= self.goal if self.higher_is_better else self.value <= self.goal

    def row(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        fmt = (lambda v: f"{v:,.0f} rows/s") if self.unit == "rows/s" else (lambda v: f"{v:.2f}x")
        return f"| {self.label} | {fmt(self.value)} | {sign} {fmt(self.goal)} | {'met' if self.met else 'NOT met'} |"


def machine() -> str:
    cpu = next(
        (li.split(":", 1)[1].strip() for li in Path("/proc/cpuinfo").read_text().splitlines() if "model name" in li),
        platform.processor(),
    )
    nproc = len(os.sched_getaffinity(0))
    return f"nproc {nproc}, {cpu}, {platform.system()} {platform.release()}"


def versions() -> str:
    names = ["flask", "flask-restful", "gunicorn", "scikit-learn", "numpy", "pandas", "orjson"]
    found = []
    for name in names:
        with contextlib.suppress(Exception):
            found.append(f"{name} {version(name)}")
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("[")[0].strip()
    return f"Python {platform.python_version()}, " + ", ".join(found) + f", {wrk_version}"


def report(res: dict) -> str:
    s = res["servers"]
    lines = [
        "| measure | mldeploy | baseline (Modeler per request) | floor (fixed answer) |",
        "| --- | ---: | ---: | ---: |",
    ]

    def add(label: str, key: str, fmt: Callable[[float], str]) -> None:
        cells = [fmt(s[n][key]) if key in s[n] else "-" for n in SERVERS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    for c in (1, 16):
        add(f"single row, c={c}: req/s", f"c{c}_rps", lambda v: f"{v:,.0f}")
        add(f"single row, c={c}: p50 ms", f"c{c}_p50", lambda v: f"{v / 1000:.2f}")
        add(f"single row, c={c}: p99 ms", f"c{c}_p99", lambda v: f"{v / 1000:.2f}")
        add(f"single row, c={c}: server CPU µs per request", f"c{c}_cpu", lambda v: f"{v * 1e6:,.0f}")
    for n in BATCH_SIZES:
        for form in ("records", "instances", "columnar"):
            add(f"{n:,}-row batch, {form}: rows/s", f"{form}-{n}", lambda v: f"{v:,.0f}")
            add(f"{n:,}-row batch, {form}: rows per server CPU-second", f"{form}-{n}_cpu", lambda v: f"{v:,.0f}")
    add("cold start, no saved model: s", "cold_fresh", lambda v: f"{v:.2f}")
    add("cold start, saved model: s", "cold_saved", lambda v: f"{v:.2f}")
    add("PSS of the process tree: MiB", "pss", lambda v: f"{v:.1f}")
    ip = res["in_process"]
    lines += [
        "",
        f"In-process, one row: `Modeler.predict(dict)` {ip['modeler_us']:.2f} µs, "
        f"sklearn `predict` on a 1x4 array {ip['sklearn_us']:.1f} µs.",
        "",
        "| target | measured | goal | |",
        "| --- | ---: | ---: | --- |",
        *(t.row() for t in targets(res)),
    ]
    return "\n".join(lines)


def targets(res: dict) -> list[Target]:
    m, b, f = (res["servers"][n] for n in SERVERS)
    nan = float("nan")
    ip = res["in_process"]
    return [
        Target("c=16 req/s vs floor", m["c16_rps"] / f["c16_rps"], 0.75, True),
        Target("c=16 req/s vs baseline", m["c16_rps"] / b["c16_rps"], 3.0, True),
        Target("c=16 p99 vs floor's p99", m["c16_p99"] / f["c16_p99"], 2.0, False),
        Target("10,000-row batch, columnar", m.get("columnar-10000", nan), 1.5e6, True, "rows/s"),
        Target("10,000-row batch, records (array)", m.get("records-10000", nan), 1.0e6, True, "rows/s"),
        Target("10,000-row batch, records (instances)", m.get("instances-10000", nan), 1.0e6, True, "rows/s"),
        Target("cold start with a saved model vs baseline", m["cold_saved"] / b["cold_saved"], 0.5, False),
        Target("PSS vs baseline", m["pss"] / b["pss"], 0.5, False),
        Target("in-process: sklearn time / Modeler.predict time", ip["sklearn_us"] / ip["modeler_us"], 25.0, True),
    ]


# -- the run ------------------------------------------------------------------------------


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="mldeploy-bench-"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def load_text(load: tuple[float, float, float]) -> str:
    return ", ".join(f"{x:.2f}" for x in load)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main() -> int:
    if shutil.which("wrk") is None:
        log("wrk is missing: `make bench` installs it (apt-get install wrk)")
        return 2
    load_at_start = os.getloadavg()
    with workdir() as work:
        iris_frame().to_csv(work / "iris.csv", index=False)
        files = bodies(work)
        servers = make_servers(work)
        results: dict = {"servers": {n: {} for n in SERVERS}}
        try:
            for name, server in servers.items():
                s = results["servers"][name]
                if name != FLOOR:  # the floor has no model to save
                    s["cold_fresh"] = cold_start(server)
                    server.stop()
                s["cold_saved"] = cold_start(server)
                log(f"{name}: cold start {s.get('cold_fresh', 0):.2f} s fresh, {s['cold_saved']:.2f} s saved")
            # Rounds, each interleaving the servers, and the median per figure: noise from other
            # work on the machine then spreads over all servers instead of hitting one.
            runs: dict[tuple[str, str], list[dict]] = {}
            unsupported: set[tuple[str, str]] = set()
            for round_ in range(ROUNDS):
                for c in (1, 16):
                    for name, server in servers.items():
                        w = wrk(server.port, files["single"], c, server.proc.pid)
                        if w["errors"]:
                            raise RuntimeError(f"{name} c={c}: {w['errors']} errors in {w}")
                        runs.setdefault((name, f"c{c}"), []).append(w)
                        log(f"[{round_ + 1}/{ROUNDS}] {name} c={c}: {w['rps']:,.0f} req/s, p99 {w['p99_us']} µs")
                if round_ == 0:
                    for name, server in servers.items():
                        results["servers"][name]["pss"] = pss_mib(server.proc.pid)
                for n in BATCH_SIZES:
                    for form in ("records", "instances", "columnar"):
                        for name in (MLDEPLOY, BASELINE) if form == "records" else (MLDEPLOY,):
                            port, key = servers[name].port, f"{form}-{n}"
                            if round_ == 0 and not batch_answered(port, files[key], n):
                                unsupported.add((name, key))
                            if (name, key) in unsupported:
                                continue
                            # A new connection per batch: two kept-alive connections may both sit on
                            # one worker for a whole run (gthread), leaving the other idle.
                            w = wrk(port, files[key], 2, servers[name].proc.pid, BATCH_HEADERS)
                            if w["errors"]:
                                raise RuntimeError(f"{name} {key}: {w['errors']} errors in {w}")
                            runs.setdefault((name, key), []).append(w)
                            log(f"[{round_ + 1}/{ROUNDS}] {name} {key}: {w['rps'] * n:,.0f} rows/s")
            for (name, key), ws in runs.items():
                s = results["servers"][name]
                if key in ("c1", "c16"):
                    s[f"{key}_rps"] = median(w["rps"] for w in ws)
                    s[f"{key}_p50"] = median(w["p50_us"] for w in ws)
                    s[f"{key}_p99"] = median(w["p99_us"] for w in ws)
                    s[f"{key}_cpu"] = median(w["cpu_per_request"] for w in ws)
                else:
                    n = int(key.rsplit("-", 1)[1])
                    s[key] = median(w["rps"] for w in ws) * n
                    s[f"{key}_cpu"] = n / median(w["cpu_per_request"] for w in ws)
        finally:
            for server in servers.values():
                server.stop()
        results["in_process"] = in_process(work / "mldeploy-models")
    table = report(results)
    header = (
        f"# Benchmark results\n\n"
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M UTC}\n- machine: {machine()}\n- versions: {versions()}\n"
        f"- each server under gunicorn, 2 workers of the production worker class "
        f"({production_worker_class()}), 127.0.0.1; mldeploy's prediction log "
        f"{log_setting_text()}; "
        f"wrk, 1 thread, {SECONDS:g} s per run "
        f"(at most {MAX_REQUESTS:,} requests); every load figure is the median of {ROUNDS} runs interleaved "
        f"across the servers; batches at 2 connections, a new one per batch (`Connection: close`); "
        f"PSS after the first single-row runs.\n"
        f"- server CPU per request: user + system time of the server's process tree during a run, divided by "
        f"its requests (rows per server CPU-second for batches): a figure that other load on the machine "
        f"barely moves.\n"
        f"- the load generator shares the machine's cores with the servers (and with anything else running).\n"
        f"- load average (1, 5, 15 min) at the start: {load_text(load_at_start)}; at the end: "
        f"{load_text(os.getloadavg())} (above {len(os.sched_getaffinity(0))}, other work competed for the cores).\n\n"
    )
    print(header + table)
    # bench/soak.py's runs live under "## Soak" at the end of the file: keep them.
    previous = RESULTS.read_text() if RESULTS.exists() else ""
    soak = previous[previous.index("\n## Soak\n") :] if "\n## Soak\n" in previous else ""
    RESULTS.write_text(header + table + "\n" + soak)
    log(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
