"""Servers and keep-alive, side by side in one run: mldeploy (mldeploy.http.wsgi:app) and the
framework floor (bench/floor_app.py), each under gunicorn's sync worker, gunicorn's gthread
worker (keep-alive) and Granian's WSGI mode, 2 workers each, on 127.0.0.1; and, when it can be
installed into a throwaway virtualenv under build/, MLServer serving the same kind of model as a
peer (it is not a dependency of the project).

Every server is loaded by wrk at 1 and 16 connections, with keep-alive clients (wrk's default:
HTTP/1.1 persistent connections) and with new-connection clients (``Connection: close`` on
every request). Figures: req/s, p50, p99, and the server's CPU time per request. With MLServer,
10,000-row batches too, at 2 connections: the same Open Inference body (one FP32 tensor
[10000, 4], flat ``data``) to mldeploy's and MLServer's V2 routes, and the same rows as named
records to mldeploy's ``/predict``; rows/s and rows per server CPU-second. Each is the median of
BENCH_ROUNDS runs interleaved across the servers, so noise from other work spreads over all of
them; the ratios are computed from figures of the same run.

    python bench/servers.py            # or: make bench-servers-compare
    BENCH_SECONDS=2 BENCH_ROUNDS=1 python bench/servers.py --no-write   # a short look

Prints a table and the ratios, and writes them under "## Servers and keep-alive" at the end of
bench/RESULTS.md (replacing that section of an earlier run; the rest of the file is left alone).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from statistics import median

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))

from run import HOST, Server, base_env, batch_rows, cpu_seconds, free_port, log, machine, post, workdir  # noqa: E402

from mldeploy.settings import WORKER_CLASSES, Settings  # noqa: E402
from modeler.data import IRIS_FEATURES  # noqa: E402

SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
MAX_REQUESTS = int(os.environ.get("BENCH_MAX_REQUESTS", "200000"))
# Threads per gthread worker and Granian's blocking threads per worker: the service's default.
THREADS = int(os.environ.get("BENCH_THREADS", str(Settings().threads)))
WORKERS = 2
START_TIMEOUT = 120.0
MLSERVER_INSTALL_TIMEOUT = 600.0
RESULTS = BENCH / "RESULTS.md"
HEADING = "## Servers and keep-alive"
SEED_ROW = {"sepal_length": 5.0, "sepal_width": 3.2, "petal_length": 1.5, "petal_width": 0.3}
# The same row as an Open Inference Protocol (V2) request, which mldeploy and MLServer both answer.
V2_BODY = {"inputs": [{"name": "input-0", "shape": [1, 4], "datatype": "FP32", "data": list(SEED_ROW.values())}]}
MODEL_NAME = "iris"
V2_PATH = f"/v2/models/{MODEL_NAME}/infer"
# Batches as bench/run.py sends them: 10,000 rows, 2 connections (one per worker).
BATCH, BATCH_CONNECTIONS = 10_000, 2
# Body names: the seed row, the same row as a V2 request, and a batch in each form.
SINGLE, V2_SINGLE, V2_BATCH, RECORDS_BATCH = "single", "v2", "v2-batch", "records-batch"

SYNC, GTHREAD, GRANIAN, MLSERVER = "gunicorn sync", "gunicorn gthread", "granian", "mlserver"
# What each gunicorn kind is in the service (MLDEPLOY_WORKER_CLASS) and as a class path.
WORKER_CLASS = {SYNC: "sync", GTHREAD: "gthread"}
WORKER_PATH = {kind: WORKER_CLASSES[name] for kind, name in WORKER_CLASS.items()}
MLDEPLOY, FLOOR, MLDEPLOY_V2 = "mldeploy", "floor", "mldeploy V2"
MLDEPLOY_V2_BATCH, MLDEPLOY_RECORDS_BATCH, MLSERVER_BATCH = (
    "mldeploy V2 batch",
    "mldeploy records batch",
    "mlserver batch",
)
KEEP_ALIVE, NEW_CONNECTION = "keep-alive", "new connection"
MODES = (KEEP_ALIVE, NEW_CONNECTION)
CONCURRENCY = (1, 16)
# uvloop pinned below 0.22: MLServer 1.7.1's inference workers call asyncio.get_event_loop() with
# no loop running, which uvloop 0.22 and later refuse (the workers then die at start, in a loop).
MLSERVER_REQUIREMENTS = ("mlserver==1.7.1", "mlserver-sklearn==1.7.1", "uvloop==0.21.0")


@dataclass
class Target:
    """One server under load: its process, the path and the body wrk posts (a name in
    :func:`bodies`), and how many rows that body holds."""

    app: str
    server: str
    process: Server
    path: str = "/predict"
    body: str = SINGLE
    rows: int = 1

    @property
    def name(self) -> str:
        return f"{self.app} / {self.server}"


# -- the servers ----------------------------------------------------------------------------


def gunicorn_target(app: str, kind: str, work: Path) -> Target:
    """mldeploy as `python -m mldeploy serve` runs it, or the floor under the same worker."""
    port = free_port()
    if app == MLDEPLOY:
        argv = [sys.executable, "-m", "mldeploy", "serve", "--workers", str(WORKERS), "--host", HOST]
        argv += ["--port", str(port)]
        env = base_env(
            MLDEPLOY_MODEL_DIR=str(work / "models"),
            MLDEPLOY_WORKER_CLASS=WORKER_CLASS[kind],
            MLDEPLOY_THREADS=str(THREADS),
        )
        return Target(app, kind, Server(f"{app} {kind}", argv, REPO, env, port))
    threads = THREADS if kind == GTHREAD else 1  # gunicorn swaps a sync worker with threads for its own gthread
    argv = [
        *(sys.executable, "-m", "gunicorn", "-c", str(BENCH / "gunicorn_bench.conf.py"), "--chdir", str(BENCH)),
        *("--workers", str(WORKERS), "--worker-class", WORKER_PATH[kind], "--threads", str(threads)),
        *("--bind", f"{HOST}:{port}", "floor_app:app"),
    ]
    return Target(app, kind, Server(f"{app} {kind}", argv, BENCH, base_env(), port))


def granian_target(app: str, work: Path) -> Target:
    """Granian's WSGI mode, ``WORKERS`` processes with ``THREADS`` blocking threads each: mldeploy
    as `python -m mldeploy serve --server granian` runs it, the floor through Granian's own CLI."""
    port = free_port()
    if app == MLDEPLOY:
        argv = [sys.executable, "-m", "mldeploy", "serve", "--server", "granian", "--workers", str(WORKERS)]
        argv += ["--threads", str(THREADS), "--host", HOST, "--port", str(port)]
        env = base_env(MLDEPLOY_MODEL_DIR=str(work / "models"))
        return Target(app, GRANIAN, Server(f"{app} {GRANIAN}", argv, REPO, env, port))
    argv = [
        *(sys.executable, "-m", "granian", "--interface", "wsgi", "--host", HOST, "--port", str(port)),
        *("--workers", str(WORKERS), "--blocking-threads", str(THREADS), "--log-level", "warning"),
        *("--working-dir", str(BENCH), "floor_app:app"),
    ]
    return Target(app, GRANIAN, Server(f"{app} {GRANIAN}", argv, BENCH, base_env(PYTHONPATH=str(BENCH)), port))


def mlserver_python() -> Path | None:
    """The throwaway virtualenv with MLServer (build/mlserver-venv), made when missing; None when
    it cannot be installed (no index reachable, no wheel for this Python) within the time allowed."""
    venv = REPO / "build" / "mlserver-venv"
    python = venv / "bin" / "python"
    log(f"installing {' '.join(MLSERVER_REQUIREMENTS)} into {venv} (a peer for the bench, not a dependency)")
    try:
        if not python.exists():
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", *MLSERVER_REQUIREMENTS],
            check=True,
            timeout=MLSERVER_INSTALL_TIMEOUT,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        log(f"MLServer not installed ({exc}): measured without it")
        return None
    return python


# MLServer's model: the same DecisionTree on Iris, trained with the peer's own scikit-learn
# (the data set ships inside scikit-learn), saved where its model-settings.json points.
MLSERVER_TRAIN = """
import joblib, sys
from sklearn.datasets import load_iris
from sklearn.tree import DecisionTreeClassifier
x, y = load_iris(return_X_y=True)
joblib.dump(DecisionTreeClassifier(random_state=0).fit(x, y), sys.argv[1])
"""


def mlserver_target(python: Path, work: Path) -> Target:
    """MLServer with its sklearn runtime and its default settings, on free ports."""
    folder = work / "mlserver"
    model = folder / MODEL_NAME
    model.mkdir(parents=True)
    subprocess.run([python, "-c", MLSERVER_TRAIN, str(model / "model.joblib")], check=True, timeout=120)
    model_settings = {"name": MODEL_NAME, "implementation": "mlserver_sklearn.SKLearnModel"}
    model_settings["parameters"] = {"uri": "./model.joblib"}
    (model / "model-settings.json").write_text(json.dumps(model_settings))
    port = free_port()
    settings = {"http_port": port, "grpc_port": free_port(), "metrics_port": free_port(), "host": HOST}
    (folder / "settings.json").write_text(json.dumps(settings))
    argv = [str(python.parent / "mlserver"), "start", str(folder)]
    process = Server(MLSERVER, argv, folder, base_env(), port)
    return Target(MLSERVER, MLSERVER, process, V2_PATH, V2_SINGLE)


def bodies() -> dict[str, object]:
    """Every request body by name: the seed row, as a V2 request too, and one batch of
    ``BATCH`` rows as a V2 request (flat FP32 data, what tritonclient sends) and as records."""
    array = batch_rows(BATCH)
    rows = array.tolist()
    v2_batch = {
        "inputs": [{"name": "input-0", "shape": [BATCH, 4], "datatype": "FP32", "data": array.ravel().tolist()}]
    }
    return {
        SINGLE: SEED_ROW,
        V2_SINGLE: V2_BODY,
        V2_BATCH: v2_batch,
        RECORDS_BATCH: [dict(zip(IRIS_FEATURES, r, strict=True)) for r in rows],
    }


def rows_answered(target: Target, answer: dict) -> int:
    """How many rows ``answer`` predicts: /predict's ``Predictions``, else the first V2 output's
    first dimension (for mldeploy ``label``, for MLServer ``predict``)."""
    if target.path == "/predict":
        return len(answer["Predictions"]) if target.rows > 1 else 1
    return answer["outputs"][0]["shape"][0]


def start(target: Target, body: bytes) -> None:
    """Start the server and wait for a 200 to its benchmark request."""
    target.process.start()
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if target.process.proc.poll() is not None:
            raise RuntimeError(f"{target.name} exited with {target.process.proc.returncode}")
        with contextlib.suppress(OSError, ValueError):
            status, _ = post_to(target.process.port, target.path, body)
            if status == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{target.name} gave no 200 within {START_TIMEOUT} s")


def post_to(port: int, path: str, body: bytes) -> tuple[int, dict]:
    """One POST of ``body`` to ``path``: (status, JSON answer)."""
    if path == "/predict":
        return post(port, body)
    import http.client

    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/json"})
        res = conn.getresponse()
        return res.status, json.loads(res.read())
    finally:
        conn.close()


# -- load ----------------------------------------------------------------------------------


def wrk(target: Target, body_file: Path, connections: int, mode: str) -> dict:
    """One bounded wrk run; its summary with req/s and the server's CPU seconds per request."""
    pid = target.process.proc.pid
    cpu_before = cpu_seconds(pid)
    headers = ["-H", "Connection: close"] if mode == NEW_CONNECTION else []
    argv = [
        *("wrk", "-t1", f"-c{connections}", f"-d{SECONDS:g}s", "--timeout", "10s", *headers),
        *("-s", str(BENCH / "post.lua"), f"http://{HOST}:{target.process.port}{target.path}"),
    ]
    env = {**os.environ, "BENCH_BODY_FILE": str(body_file), "BENCH_MAX_REQUESTS": str(MAX_REQUESTS)}
    out = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=SECONDS + 60, check=True).stdout
    summary = json.loads(next(li for li in out.splitlines() if li.startswith("BENCH "))[len("BENCH ") :])
    summary["cpu_per_request"] = (cpu_seconds(pid) - cpu_before) / max(summary["requests"], 1)
    summary["rps"] = summary["requests"] / (summary["duration_us"] / 1e6)
    summary["errors"] = sum(
        summary[k] for k in ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
    )
    return summary


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as uptime prints them."""
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


# -- report --------------------------------------------------------------------------------


Figures = dict[tuple[str, str, int], dict[str, float]]  # (target name, mode, c) -> figures


def summarize(runs: dict[tuple[str, str, int], list[dict]]) -> Figures:
    """The median of each figure over the rounds."""
    return {
        key: {
            "rps": median(w["rps"] for w in ws),
            "rows_per_cpu_s": median(1 / w["cpu_per_request"] if w["cpu_per_request"] else 0.0 for w in ws),
            "p50": median(w["p50_us"] for w in ws) / 1000,
            "p99": median(w["p99_us"] for w in ws) / 1000,
            "cpu": median(w["cpu_per_request"] for w in ws) * 1e6,
            "errors": sum(w["errors"] for w in ws),
        }
        for key, ws in runs.items()
    }


def table(targets: list[Target], figures: Figures) -> list[str]:
    lines = [
        "| app / server | clients | c | req/s | p50 ms | p99 ms | server CPU µs/request | errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for target in targets:
        if target.rows > 1:
            continue
        for mode in MODES:
            for c in CONCURRENCY:
                f = figures.get((target.name, mode, c))
                if f is None:
                    continue
                lines.append(
                    f"| {target.name} | {mode} | {c} | {f['rps']:,.0f} | {f['p50']:.2f} | {f['p99']:.2f} "
                    f"| {f['cpu']:,.0f} | {f['errors']:.0f} |"
                )
    return lines


def batch_table(targets: list[Target], figures: Figures) -> list[str]:
    """The batch runs: rows/s, latency and rows per server CPU-second."""
    lines = [
        f"| {BATCH:,}-row batch: app / server | clients | c | rows/s | p50 ms | p99 ms | rows per server CPU-second "
        "| errors |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for target in targets:
        for mode in MODES:
            f = figures.get((target.name, mode, BATCH_CONNECTIONS))
            if target.rows == 1 or f is None:
                continue
            lines.append(
                f"| {target.name} | {mode} | {BATCH_CONNECTIONS} | {f['rps'] * target.rows:,.0f} | {f['p50']:.2f} "
                f"| {f['p99']:.2f} | {f['rows_per_cpu_s'] * target.rows:,.0f} | {f['errors']:.0f} |"
            )
    return lines


def batch_ratios(figures: Figures, default: str) -> list[str]:
    """mldeploy's batch rows/s against MLServer's on the same V2 body, from this run."""

    def rps(app: str, server: str, mode: str) -> float:
        f = figures.get((f"{app} / {server}", mode, BATCH_CONNECTIONS))
        return f["rps"] if f else float("nan")

    lines = ["| comparison | keep-alive | new connection |", "| --- | ---: | ---: |"]
    for label, app in (
        ("the same V2 body to both", MLDEPLOY_V2_BATCH),
        ("named records to mldeploy's /predict, the V2 body to MLServer", MLDEPLOY_RECORDS_BATCH),
    ):
        found = [rps(app, default, mode) / rps(MLSERVER_BATCH, MLSERVER, mode) for mode in MODES]
        lines.append(
            f"| {BATCH:,}-row batch rows/s, {label}, mldeploy / MLServer | "
            + " | ".join(f"{x:.2f}x" for x in found)
            + " |"
        )
    return lines


def ratios(figures: Figures, default: str, has_mlserver: bool) -> list[str]:
    """The comparisons, each from figures of this run."""

    def get(app: str, server: str, mode: str, c: int, key: str) -> float:
        f = figures.get((f"{app} / {server}", mode, c))
        return f[key] if f else float("nan")

    lines = ["| comparison | clients | c=1 | c=16 |", "| --- | --- | ---: | ---: |"]

    def row(label: str, mode: str, value: Callable[[int], float], fmt: str = "{:.2f}x") -> None:
        lines.append(f"| {label} | {mode} | " + " | ".join(fmt.format(value(c)) for c in CONCURRENCY) + " |")

    for mode in MODES:
        for server in (GTHREAD, GRANIAN):
            row(
                f"mldeploy req/s, {server} / gunicorn sync",
                mode,
                lambda c, s=server, m=mode: get(MLDEPLOY, s, m, c, "rps") / get(MLDEPLOY, SYNC, m, c, "rps"),
            )
    for mode in MODES:
        for server in (SYNC, GTHREAD, GRANIAN):
            row(
                f"req/s, mldeploy / floor under {server}",
                mode,
                lambda c, s=server, m=mode: get(MLDEPLOY, s, m, c, "rps") / get(FLOOR, s, m, c, "rps"),
            )
    for mode in MODES:
        for server in (SYNC, GTHREAD, GRANIAN):
            row(
                f"p99, mldeploy / floor under {server}",
                mode,
                lambda c, s=server, m=mode: get(MLDEPLOY, s, m, c, "p99") / get(FLOOR, s, m, c, "p99"),
            )
    if has_mlserver:
        for mode in MODES:
            row(
                f"V2 req/s, mldeploy ({default}) / MLServer",
                mode,
                lambda c, m=mode: get(MLDEPLOY_V2, default, m, c, "rps") / get(MLSERVER, MLSERVER, m, c, "rps"),
            )
            row(
                f"V2 p99, mldeploy ({default}) / MLServer",
                mode,
                lambda c, m=mode: get(MLDEPLOY_V2, default, m, c, "p99") / get(MLSERVER, MLSERVER, m, c, "p99"),
            )
    for mode in MODES:
        row(
            f"mldeploy ({default}) p50 ms",
            mode,
            lambda c, m=mode: get(MLDEPLOY, default, m, c, "p50"),
            "{:.2f}",
        )
    return lines


def versions() -> str:
    found = [f"Python {sys.version.split()[0]}"]
    for name in ("gunicorn", "granian", "flask", "werkzeug"):
        with contextlib.suppress(Exception):
            found.append(f"{name} {version(name)}")
    found.append(subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("[")[0].strip())
    return ", ".join(found)


def write_section(text: str, path: Path = RESULTS) -> None:
    """Put ``text`` under HEADING at the end of RESULTS.md, replacing that section of an earlier
    run (up to the next "## " heading) and leaving everything else as it is."""
    current = path.read_text() if path.exists() else "# Benchmark results\n"
    lines = current.splitlines()
    if HEADING in lines:
        start = lines.index(HEADING)
        end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
        lines = lines[:start] + lines[end:]
    path.write_text("\n".join(lines).rstrip("\n") + "\n\n" + text.rstrip("\n") + "\n")


# -- the run --------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    parser.add_argument("--no-mlserver", action="store_true", help="leave the MLServer peer out")
    parser.add_argument("--no-granian", action="store_true", help="leave Granian out (when it is not installed)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        log("wrk is missing: `make bench-deps` installs it (apt-get install wrk)")
        return 2
    default = {"gthread": GTHREAD, "sync": SYNC}[Settings().worker_class]
    mlserver = None if args.no_mlserver else mlserver_python()
    with workdir() as work:
        payloads = {name: json.dumps(body).encode() for name, body in bodies().items()}
        files = {name: work / f"{name}.json" for name in payloads}
        for name, payload in payloads.items():
            files[name].write_bytes(payload)
        # One model for every mldeploy server: trained once, before any of them starts.
        subprocess.run(
            [sys.executable, "-m", "mldeploy", "train"],
            cwd=REPO,
            env=base_env(MLDEPLOY_MODEL_DIR=str(work / "models")),
            check=True,
            capture_output=True,
            timeout=300,
        )
        targets = [gunicorn_target(app, kind, work) for app in (MLDEPLOY, FLOOR) for kind in (SYNC, GTHREAD)]
        if not args.no_granian:
            targets += [granian_target(app, work) for app in (MLDEPLOY, FLOOR)]
        if mlserver is not None:
            served = next(t for t in targets if t.app == MLDEPLOY and t.server == default).process
            targets.append(Target(MLDEPLOY_V2, default, served, V2_PATH, V2_SINGLE))
            peer = mlserver_target(mlserver, work)
            targets.append(peer)
            targets += [
                Target(MLDEPLOY_V2_BATCH, default, served, V2_PATH, V2_BATCH, BATCH),
                Target(MLDEPLOY_RECORDS_BATCH, default, served, "/predict", RECORDS_BATCH, BATCH),
                Target(MLSERVER_BATCH, MLSERVER, peer.process, V2_PATH, V2_BATCH, BATCH),
            ]
        runs: dict[tuple[str, str, int], list[dict]] = {}
        loads = []
        try:
            for target in targets:
                if target.process.proc is None:
                    start(target, payloads[target.body])
                    log(f"{target.name}: up on port {target.process.port}")
                status, answer = post_to(target.process.port, target.path, payloads[target.body])
                if status != 200 or rows_answered(target, answer) != target.rows:
                    raise RuntimeError(f"{target.name} answered {status}, not {target.rows} rows: {str(answer)[:200]}")
            for round_ in range(ROUNDS):
                loads.append(load_average())
                for mode in MODES:
                    for c in (*CONCURRENCY, BATCH_CONNECTIONS):
                        for target in targets:
                            if (target.rows > 1) != (c == BATCH_CONNECTIONS):
                                continue
                            w = wrk(target, files[target.body], c, mode)
                            runs.setdefault((target.name, mode, c), []).append(w)
                            log(
                                f"[{round_ + 1}/{ROUNDS}] {target.name}, {mode}, c={c}: {w['rps']:,.0f} req/s, "
                                f"p50 {w['p50_us'] / 1000:.2f} ms, p99 {w['p99_us'] / 1000:.2f} ms, "
                                f"{w['cpu_per_request'] * 1e6:,.0f} µs CPU/request, {w['errors']} errors"
                            )
        finally:
            for target in targets:
                target.process.stop()
        loads.append(load_average())
    figures = summarize(runs)
    peer = (
        "MLServer 1.7.1 (mlserver-sklearn, its default settings: one inference worker process) in "
        "build/mlserver-venv, on the V2 route, against mldeploy's V2 route under the default server"
        if mlserver is not None
        else "MLServer: not measured (it could not be installed into build/mlserver-venv here, or --no-mlserver)"
    )
    text = "\n".join(
        [
            HEADING,
            "",
            f"`python bench/servers.py` (`make bench-servers-compare`), {datetime.now(UTC):%Y-%m-%d %H:%M UTC}.",
            "",
            f"- machine: {machine()}; load average before each round and at the end: {' | '.join(loads)}",
            f"- versions: {versions()}",
            f"- {WORKERS} workers per server on 127.0.0.1; gthread workers {THREADS} threads each, Granian "
            f"{THREADS} blocking threads per worker; the floor under the same worker class as mldeploy; "
            f"wrk, 1 thread, {SECONDS:g} s per run, the median of {ROUNDS} runs interleaved across the servers.",
            "- keep-alive: wrk's HTTP/1.1 persistent connections (the sync worker still closes each one after its "
            "answer); new connection: `Connection: close` on every request, so every request pays a TCP connect "
            "and close.",
            f"- {peer}.",
            f"- the default server (MLDEPLOY_WORKER_CLASS's default) is {default}.",
            "",
            *table(targets, figures),
            "",
            *ratios(figures, default, mlserver is not None),
            *(
                ["", *batch_table(targets, figures), "", *batch_ratios(figures, default)]
                if mlserver is not None
                else []
            ),
        ]
    )
    print(text)
    if not args.no_write:
        write_section(text)
        log(f"written to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
