"""Issue 14's figures: a 10 % canary's share over 5,000 requests from 8 clients against 4 gunicorn
workers, failed requests across a promote and an abort under load, and what a shadow costs the
primary's p50 at c=16 (wrk, shadow off and on, interleaved, in one run).

    .venv/bin/python bench/rollout.py            # prints the figures, appends them to bench/RESULTS.md
    .venv/bin/python bench/rollout.py --no-write

Every load is bounded in time and count and goes to 127.0.0.1 on a port this script opened.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

import requests

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path[:0] = [str(REPO), str(BENCH)]
os.environ.setdefault("BENCH_SECONDS", "5")  # each wrk run; read by bench/run.py at import

from run import SECONDS, free_port, wrk  # noqa: E402

from modeler.modeler import Modeler  # noqa: E402

RESULTS = BENCH / "RESULTS.md"
HEADING = "## Rollout"
WORKERS, CLIENTS, REQUESTS, PERCENT = 4, 8, 5_000, 10.0
POLL = 0.5
ADMIN = {"Authorization": "Bearer bench-admin"}
SEED_ROW = {"sepal_length": 5.0, "sepal_width": 3.2, "petal_length": 1.5, "petal_width": 0.3}
ROWS = [
    SEED_ROW,
    {"sepal_length": 6.5, "sepal_width": 3.0, "petal_length": 5.5, "petal_width": 2.0},
    {"sepal_length": 6.0, "sepal_width": 2.7, "petal_length": 4.9, "petal_width": 1.6},
    {"sepal_length": 5.7, "sepal_width": 2.8, "petal_length": 4.1, "petal_width": 1.3},
]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_average() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


class Server:
    """gunicorn with the package's config, WORKERS workers, on a model directory of its own."""

    def __init__(self, model_dir: Path, log_file: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLDEPLOY_")}
        env.update(MLDEPLOY_MODEL_DIR=str(model_dir), MLDEPLOY_ADMIN_KEY=ADMIN["Authorization"].split()[1])
        env.update(MLDEPLOY_POLL_INTERVAL=str(POLL))
        argv = [sys.executable, "-m", "gunicorn", "--config", "python:mldeploy.http.gunicorn_conf"]
        argv += ["--workers", str(WORKERS), "--bind", f"127.0.0.1:{self.port}"]
        self.out = open(log_file, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=self.out, stderr=self.out)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if requests.get(self.base + "/ready", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise TimeoutError("the server did not get ready")

    def stop(self) -> None:
        self.proc.terminate()  # by its PID
        self.proc.wait(30)
        self.out.close()

    def admin(self, action: str, body: dict | None = None) -> dict:
        res = requests.post(f"{self.base}/models/iris/rollout/{action}", json=body, headers=ADMIN, timeout=120)
        res.raise_for_status()
        return res.json()


def canary_share(server: Server, baseline: str, candidate: str) -> dict:
    server.admin("start", {"version": candidate, "percent": PERCENT})
    time.sleep(POLL + 0.2)
    local = threading.local()

    def one(i: int) -> tuple[int, str | None]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        try:
            res = local.session.post(f"{server.base}/predict", json=ROWS[i % len(ROWS)], timeout=30)
        except requests.RequestException:
            return -1, None
        return res.status_code, res.json().get("ModelVersion") if res.ok else None

    with ThreadPoolExecutor(CLIENTS) as pool:
        answers = list(pool.map(one, range(REQUESTS)))
    time.sleep(0.6)
    status = requests.get(f"{server.base}/models/iris/rollout", timeout=30).json()
    server.admin("abort")
    versions = Counter(v for _, v in answers)
    return {
        "requests": REQUESTS,
        "failed": sum(code != 200 for code, _ in answers),
        "share": versions[candidate] / REQUESTS,
        "shared_candidate": status["arms"]["candidate"]["requests"],
        "client_candidate": versions[candidate],
        "p50_ms": (status["arms"]["baseline"]["latency_ms"]["p50"], status["arms"]["candidate"]["latency_ms"]["p50"]),
        "load": load_average(),
    }


def switch_under_load(server: Server, baseline: str, candidate: str, action: str) -> dict:
    """A 50 % canary, then ``action`` while CLIENTS threads post; answers sent one poll interval
    after the switch came back must all be the winner's."""
    server.admin("start", {"version": candidate, "percent": 50})
    stop = threading.Event()
    answers: list[tuple[float, int, str | None]] = []
    rows = itertools.cycle(ROWS)

    def client() -> None:
        session = requests.Session()
        while not stop.is_set():
            sent = time.monotonic()
            try:
                res = session.post(f"{server.base}/predict", json=next(rows), timeout=30)
                answers.append((sent, res.status_code, res.json().get("ModelVersion") if res.ok else None))
            except requests.RequestException:
                answers.append((sent, -1, None))

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    time.sleep(POLL + 1.0)
    server.admin(action)
    done = time.monotonic()
    time.sleep(POLL + 2.0)
    stop.set()
    for thread in threads:
        thread.join()
    winner = candidate if action == "promote" else baseline
    after = [v for sent, _, v in answers if sent >= done + POLL]
    if action == "promote":  # back to the baseline
        res = requests.post(f"{server.base}/model/activate", json={"version": baseline}, headers=ADMIN, timeout=120)
        res.raise_for_status()
        time.sleep(POLL + 0.2)
    return {
        "requests": len(answers),
        "failed": sum(code != 200 for _, code, _ in answers),
        "after": len(after),
        "after_not_winner": sum(v != winner for v in after),
        "load": load_average(),
    }


def shadow_cost(server: Server, candidate: str, rounds: int, work: Path) -> dict:
    body = work / "row.json"
    body.write_text(json.dumps(SEED_ROW))
    runs: dict[bool, list[dict]] = {False: [], True: []}
    status: dict = {}
    for i in range(rounds):
        # Alternate which goes first: a run right after a switch must not always be the same one.
        for shadow in (False, True) if i % 2 == 0 else (True, False):
            if shadow:
                server.admin("start", {"version": candidate, "shadow": True})
                time.sleep(POLL + 0.2)
            runs[shadow].append(wrk(server.port, body, 16, server.proc.pid))
            if shadow:
                time.sleep(0.6)
                status = requests.get(f"{server.base}/models/iris/rollout", timeout=30).json()
                server.admin("abort")
            time.sleep(POLL + 0.2)
    off = [w["p50_us"] for w in runs[False]]
    on = [w["p50_us"] for w in runs[True]]
    rps_off, rps_on = [w["rps"] for w in runs[False]], [w["rps"] for w in runs[True]]
    cpu_off = [w["cpu_per_request"] for w in runs[False]]
    cpu_on = [w["cpu_per_request"] for w in runs[True]]
    return {
        "p50_off_us": median(off),
        "p50_on_us": median(on),
        "ratio": median(on) / median(off),
        "rps_off": median(rps_off),
        "rps_on": median(rps_on),
        # The server's CPU per request (its process tree): what the shadow really adds, a figure
        # the machine's other load barely moves, unlike a latency.
        "cpu_ratio": median(cpu_on) / median(cpu_off),
        "shadowed": status["arms"]["candidate"]["requests"],
        "dropped": status["agreement"]["dropped"],
        "load": load_average(),
    }


def switch_row(action: str, figures: dict, winner: str) -> str:
    """One table row for a promote or an abort under load."""
    ok = figures["failed"] == 0 == figures["after_not_winner"]
    return (
        f"| {action} under load | {figures['requests']:,} requests, {figures['failed']} failed; "
        f"{figures['after_not_winner']} of {figures['after']} answers sent one poll interval after were not "
        f"{winner}; load {figures['load']} | 0 failed, 0 | {'met' if ok else 'NOT met'} |"
    )


def report(canary: dict, promote: dict, abort: dict, shadow: dict, rounds: int, seconds: str) -> str:
    ok_share = abs(canary["share"] * 100 - PERCENT) <= 2 and canary["failed"] == 0
    ok_switch = all(r["failed"] == 0 and r["after_not_winner"] == 0 for r in (promote, abort))
    ok_shadow = shadow["ratio"] <= 1.05
    mark = {True: "met", False: "NOT met"}
    return "\n".join(
        [
            f"### {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: `python bench/rollout.py`",
            "",
            f"- gunicorn, {WORKERS} sync workers, 127.0.0.1, poll interval {POLL} s; the load generators share the "
            "machine's 2 cores with the server and with other work (load average after each step below).",
            "",
            "| figure | value | target | |",
            "| --- | ---: | --- | --- |",
            f"| 10 % canary, {REQUESTS:,} requests, {CLIENTS} clients: candidate share | {canary['share']:.2%} "
            f"(shared count {canary['shared_candidate']}, clients' {canary['client_candidate']}), "
            f"{canary['failed']} failed; load {canary['load']} | 10 % ± 2, 0 failed | {mark[ok_share]} |",
            switch_row("promote", promote, "the promoted version"),
            switch_row("abort", abort, "the baseline"),
            f"| shadow's cost, c=16 (wrk, {rounds} rounds of {seconds} s, medians) "
            f"| p50 {shadow['p50_on_us'] / 1000:.2f} ms on vs {shadow['p50_off_us'] / 1000:.2f} ms off: "
            f"{shadow['ratio']:.3f}x; req/s {shadow['rps_on']:,.0f} vs {shadow['rps_off']:,.0f}; last round "
            f"{shadow['shadowed']:,} copies answered, {shadow['dropped']:,} dropped; the server's CPU per request "
            f"{shadow['cpu_ratio']:.3f}x; load {shadow['load']} "
            f"| <= 1.05x | {mark[ok_shadow]} |",
            "",
            f"Verdict: **{'PASS' if ok_share and ok_switch and ok_shadow else 'FAIL'}**",
            "",
        ]
    )


def append_results(text: str) -> None:
    current = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if HEADING not in current.splitlines():
        current = current.rstrip("\n") + f"\n\n{HEADING}\n\nRuns of `bench/rollout.py` (issue 14), newest last.\n"
    RESULTS.write_text(current.rstrip("\n") + "\n\n" + text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    parser.add_argument("--rounds", type=int, default=5, help="shadow off/on rounds (default: 5)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mldeploy-bench-rollout-") as tmp:
        work = Path(tmp)
        models = work / "models"
        candidate = Modeler(models, max_depth=2).fit().version
        baseline = Modeler(models).fit().version
        server = Server(models, work / "server.log")
        try:
            log("canary share ...")
            canary = canary_share(server, baseline, candidate)
            log(f"  {canary}")
            log("promote under load ...")
            promote = switch_under_load(server, baseline, candidate, "promote")
            log(f"  {promote}")
            log("abort under load ...")
            abort = switch_under_load(server, baseline, candidate, "abort")
            log(f"  {abort}")
            log("shadow off/on at c=16 ...")
            shadow = shadow_cost(server, candidate, args.rounds, work)
            log(f"  {shadow}")
        except Exception:
            server.stop()
            log("the server's log, last lines:\n" + "\n".join((work / "server.log").read_text().splitlines()[-40:]))
            raise
        else:
            server.stop()
    text = report(canary, promote, abort, shadow, args.rounds, f"{SECONDS:g}")
    print(text)
    if not args.no_write:
        append_results(text)
        log(f"appended to {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
