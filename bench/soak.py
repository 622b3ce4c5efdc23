"""Soak: ``python -m mldeploy serve --workers 2`` under mixed valid and invalid traffic for a long
time, watching each worker's memory and open file descriptors (issue 15). Not part of CI.

    python bench/soak.py                      # 30 minutes at c=8 against 2 workers (make bench-soak)
    python bench/soak.py --minutes 3          # a short run

The server runs on a free 127.0.0.1 port with a temporary model directory; the load is bounded in
time (--minutes) and in count (--max-requests). Every --sample-every seconds, each worker's RSS
(/proc/<pid>/status) and open descriptors (/proc/<pid>/fd) are read; the workers are the
gunicorn master's children (/proc/<pid>/task/*/children). The verdict: each worker's RSS stays
within --rss-tolerance of its value after warm-up, its descriptors do not grow (one in-flight
connection aside), no worker is replaced, and no answer is a 5xx, a connection error or another
status than the one its kind expects. The figures are printed and appended to bench/RESULTS.md
under "## Soak".
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import http.client
import itertools
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "RESULTS.md"
SOAK_HEADING = "## Soak"
HOST = "127.0.0.1"
FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
# Small limits for the soak's server, so that "too large" bodies cost little to send.
MAX_CONTENT_LENGTH = 256 * 1024
MAX_BATCH_ROWS = 500
JSON = {"Content-Type": "application/json"}
# Latency histogram edges in ms: bounded memory however long the run.
EDGES = [0.05 * 1.05**i for i in range(300)]


# -- the traffic ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """One kind of request, the status it must get and its share of the traffic."""

    name: str
    weight: int
    expect: int
    make: Callable[[random.Random], tuple[str, str, bytes | None, dict[str, str]]]


# Iris' training ranges, so that most rows raise no out-of-range warning.
RANGES = ((4.3, 7.9), (2.0, 4.4), (1.0, 6.9), (0.1, 2.5))


def _row(rng: random.Random) -> dict[str, float]:
    return {f: round(rng.uniform(low, high), 1) for f, (low, high) in zip(FEATURES, RANGES, strict=True)}


def _post(path: str, body: object, headers: dict[str, str] = JSON) -> tuple[str, str, bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return "POST", path, raw, headers


def _with(rng: random.Random, **changes: object) -> bytes:
    row: dict[str, object] = {**_row(rng), **changes}
    return json.dumps({k: v for k, v in row.items() if v is not None}).encode()


def _nan_row(rng: random.Random) -> bytes:
    # A NaN literal in a field's place: orjson refuses it, the stdlib reads it, validation names it.
    return _with(rng, petal_width=0.0).replace(b'"petal_width": 0.0', b'"petal_width": NaN')


def _v2(rng: random.Random, datatype: str = "FP64") -> bytes:
    rows = [list(_row(rng).values()) for _ in range(rng.randint(1, 8))]
    tensor = {"name": "x", "datatype": datatype, "shape": [len(rows), 4], "data": rows}
    return json.dumps({"inputs": [tensor]}).encode()


KINDS = (
    Kind("valid row", 30, 200, lambda r: _post("/predict", _row(r))),
    Kind("valid batch (records)", 6, 200, lambda r: _post("/predict", [_row(r) for _ in range(r.randint(2, 100))])),
    Kind(
        "valid batch (columnar)",
        4,
        200,
        lambda r: _post("/predict", {"columns": list(FEATURES), "data": [list(_row(r).values()) for _ in range(100)]}),
    ),
    Kind("V2 infer valid", 8, 200, lambda r: _post("/v2/models/iris/infer", _v2(r))),
    Kind("malformed JSON", 5, 400, lambda r: _post("/predict", b'{"sepal_length": 5.0,')),
    Kind("missing field", 5, 400, lambda r: _post("/predict", _with(r, petal_width=None))),
    Kind("unknown field", 5, 400, lambda r: _post("/predict", _with(r, colour="blue"))),
    Kind("NaN", 5, 400, lambda r: _post("/predict", _nan_row(r))),
    Kind("wrong type", 5, 400, lambda r: _post("/predict", _with(r, sepal_width="wide"))),
    Kind("nested 10,000 deep", 3, 400, lambda r: _post("/predict", b"[" * 10_000 + b"]" * 10_000)),
    Kind("too many rows", 2, 413, lambda r: _post("/predict", [_row(r) for _ in range(MAX_BATCH_ROWS + 1)])),
    Kind("body too large", 1, 413, lambda r: _post("/predict", b" " * (MAX_CONTENT_LENGTH + 1) + b"{}")),
    Kind("wrong content type", 4, 415, lambda r: _post("/predict", _with(r), {"Content-Type": "text/plain"})),
    Kind("unknown path", 4, 404, lambda r: _post("/nowhere", _row(r))),
    Kind("GET /predict", 4, 405, lambda r: ("GET", "/predict", None, {})),
    Kind("V2 infer invalid", 4, 400, lambda r: _post("/v2/models/iris/infer", _v2(r, datatype="INT8"))),
)


@dataclass
class Tally:
    """What the load threads saw: answers by kind and status, errors, latencies."""

    statuses: Counter = field(default_factory=Counter)  # (kind, status) -> count
    errors: Counter = field(default_factory=Counter)  # (kind, error) -> count
    histogram: list[int] = field(default_factory=lambda: [0] * (len(EDGES) + 1))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, status: int | None, error: str | None, ms: float) -> None:
        with self.lock:
            if status is None:
                self.errors[kind, error] += 1
            else:
                self.statuses[kind, status] += 1
            self.histogram[bisect.bisect(EDGES, ms)] += 1

    @property
    def total(self) -> int:
        return sum(self.statuses.values()) + sum(self.errors.values())

    def percentile(self, q: float) -> float:
        """The q-th quantile of latency in ms (to the histogram's 5 % resolution)."""
        rank, seen = q * max(self.total, 1), 0
        for i, count in enumerate(self.histogram):
            seen += count
            if seen >= rank:
                return EDGES[min(i, len(EDGES) - 1)]
        return EDGES[-1]


def send(port: int, kind: Kind, rng: random.Random, tally: Tally) -> None:
    """One request on a new connection (gunicorn's sync workers close each one anyway)."""
    method, path, body, headers = kind.make(rng)
    start = time.perf_counter()
    conn = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        res = conn.getresponse()
        res.read()
        tally.add(kind.name, res.status, None, (time.perf_counter() - start) * 1000)
    except (OSError, http.client.HTTPException) as exc:
        tally.add(kind.name, None, type(exc).__name__, (time.perf_counter() - start) * 1000)
    finally:
        conn.close()


def load(port: int, worker: int, deadline: float, budget: Iterator[int], stop: threading.Event, tally: Tally) -> None:
    """One load thread: weighted random kinds until the deadline, the shared budget or ``stop``."""
    rng = random.Random(worker)
    kinds, weights = list(KINDS), [k.weight for k in KINDS]
    while time.monotonic() < deadline and not stop.is_set() and next(budget, None) is not None:
        send(port, rng.choices(kinds, weights)[0], rng, tally)


# -- the server and its workers -------------------------------------------------------------


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (gunicorn's workers, for its master)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(c) for c in (task / "children").read_text().split()]
    return sorted(found)


def rss_kib(pid: int) -> int:
    """Resident set size of ``pid`` in KiB (VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise LookupError(pid)


def open_fds(pid: int) -> int:
    """How many file descriptors ``pid`` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


@contextlib.contextmanager
def serve(workers: int, log: Path) -> Iterator[tuple[int, subprocess.Popen]]:
    """``python -m mldeploy serve`` on a free port with a temporary model directory; yields the
    port and the process (the gunicorn master: serve execs it). Stopped by its PID."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mldeploy-soak-") as models:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLDEPLOY_")}
        env.update(
            MLDEPLOY_MODEL_DIR=models,
            MLDEPLOY_MAX_CONTENT_LENGTH=str(MAX_CONTENT_LENGTH),
            MLDEPLOY_MAX_BATCH_ROWS=str(MAX_BATCH_ROWS),
            # One JSON line per request at INFO would be gigabytes over 30 minutes: warnings only.
            MLDEPLOY_LOG_LEVEL="WARNING",
        )
        argv = [
            sys.executable,
            "-m",
            "mldeploy",
            "serve",
            "--workers",
            str(workers),
            "--host",
            HOST,
            "--port",
            str(port),
        ]
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=out, stderr=out)
            try:
                wait_ready(port, proc)
                yield port, proc
            finally:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                    try:
                        proc.wait(60)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                        proc.wait(10)


def wait_ready(port: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until /ready answers 200 (the model trained and loaded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            conn = http.client.HTTPConnection(HOST, port, timeout=5)
            conn.request("GET", "/ready")
            if conn.getresponse().status == 200:
                conn.close()
                return
            conn.close()
        time.sleep(0.2)
    raise TimeoutError("the server was not ready in time")


# -- the run ------------------------------------------------------------------------------


@dataclass
class Sample:
    """One look at the workers: seconds since the start, and per worker PID (RSS KiB, fds)."""

    at: float
    workers: dict[int, tuple[int, int]]


def sample(master: int, at: float) -> Sample:
    """Each worker's RSS and descriptor count now."""
    seen = {}
    for pid in children(master):
        with contextlib.suppress(OSError, LookupError):
            seen[pid] = (rss_kib(pid), open_fds(pid))
    return Sample(at, seen)


@dataclass
class Verdict:
    """Per-worker figures and whether each criterion held."""

    rows: list[dict]
    replaced: bool
    ok: bool
    reasons: list[str]


def judge(
    samples: list[Sample], warmup: float, tally: Tally, rss_tolerance: float, expected: dict[str, int]
) -> Verdict:
    """The verdict on a run: memory and descriptors per worker after warm-up, and the answers."""
    after = [s for s in samples if s.at >= warmup]
    reasons: list[str] = []
    if len(after) < 2:
        return Verdict([], False, False, ["fewer than two samples after warm-up: run longer"])
    base = after[0]
    pids = set(base.workers)
    replaced = any(set(s.workers) != pids for s in after)
    rows = []
    for pid in sorted(pids):
        series = [s.workers[pid] for s in after if pid in s.workers]
        rss = [r for r, _ in series]
        fds = [f for _, f in series]
        rss0, fd0 = series[0]
        drift = max(abs(r - rss0) for r in rss) / rss0
        rows.append(
            {
                "pid": pid,
                "rss0": rss0 / 1024,
                "rss_min": min(rss) / 1024,
                "rss_max": max(rss) / 1024,
                "rss_last": rss[-1] / 1024,
                "drift": drift,
                "fd0": fd0,
                "fd_max": max(fds),
                "fd_last": fds[-1],
            }
        )
        if drift > rss_tolerance:
            reasons.append(
                f"worker {pid}: RSS moved {drift:.1%} from its value after warm-up (limit {rss_tolerance:.0%})"
            )
        # A sync worker holds at most one client connection at a time: one descriptor more than
        # at the first sample is an in-flight request, not growth.
        if max(fds) > fd0 + 1:
            reasons.append(f"worker {pid}: open descriptors grew from {fd0} to {max(fds)}")
    if replaced:
        reasons.append("a worker was replaced (crashed or timed out) during the run")
    server_errors = sum(n for (_, status), n in tally.statuses.items() if status >= 500)
    unexpected = sum(n for (kind, status), n in tally.statuses.items() if status != expected[kind])
    errors = sum(tally.errors.values())
    if server_errors:
        reasons.append(f"{server_errors} answers were 5xx")
    if unexpected - server_errors:
        reasons.append(f"{unexpected - server_errors} answers had another status than their kind expects")
    if errors:
        reasons.append(f"{errors} requests got no answer (connection errors)")
    return Verdict(rows, replaced, not reasons, reasons)


def report(args: argparse.Namespace, elapsed: float, warmup: float, tally: Tally, verdict: Verdict) -> str:
    """The run's figures as Markdown: settings, per-worker memory and descriptors, answers."""
    expected = {k.name: k.expect for k in KINDS}
    total = tally.total
    server_errors = sum(n for (_, status), n in tally.statuses.items() if status >= 500)
    lines = [
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M UTC}: {elapsed / 60:.1f} minutes at c={args.concurrency} "
        f"against {args.workers} workers: {'PASS' if verdict.ok else 'FAIL'}",
        "",
        f"- machine: nproc {os.cpu_count()}, {platform.platform()}; Python {platform.python_version()}, "
        f"gunicorn {version('gunicorn')}, flask {version('flask')}; the load generator (Python threads, a new "
        "connection per request) shares the cores with the server and with other work on the machine.",
        f"- `python bench/soak.py --minutes {args.minutes:g} --concurrency {args.concurrency} --workers "
        f"{args.workers}`: warm-up {warmup:.0f} s, a sample every {args.sample_every:g} s; server limits "
        f"MLDEPLOY_MAX_CONTENT_LENGTH={MAX_CONTENT_LENGTH}, MLDEPLOY_MAX_BATCH_ROWS={MAX_BATCH_ROWS}.",
        f"- {total:,} requests ({total / max(elapsed, 1e-9):,.0f}/s), latency p50 {tally.percentile(0.5):.1f} ms, "
        f"p99 {tally.percentile(0.99):.1f} ms; 5xx: {server_errors}; connection errors: {sum(tally.errors.values())}.",
        "",
        "| worker | RSS after warm-up MiB | min | max | last | largest change | fds after warm-up | max | last |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in verdict.rows:
        lines.append(
            f"| {r['pid']} | {r['rss0']:.1f} | {r['rss_min']:.1f} | {r['rss_max']:.1f} | {r['rss_last']:.1f} | "
            f"{r['drift']:.1%} | {r['fd0']} | {r['fd_max']} | {r['fd_last']} |"
        )
    lines += ["", "| kind | share | expects | answers | statuses seen |", "| --- | ---: | ---: | ---: | --- |"]
    weight = sum(k.weight for k in KINDS)
    for kind in KINDS:
        seen = {status: n for (name, status), n in tally.statuses.items() if name == kind.name}
        failed = {error: n for (name, error), n in tally.errors.items() if name == kind.name}
        shown = ", ".join([f"{s}: {n:,}" for s, n in sorted(seen.items())] + [f"{e}: {n:,}" for e, n in failed.items()])
        lines.append(
            f"| {kind.name} | {kind.weight / weight:.0%} | {expected[kind.name]} | {sum(seen.values()):,} | {shown} |"
        )
    lines += [
        "",
        f"Verdict: **{'PASS' if verdict.ok else 'FAIL'}**" + ("" if verdict.ok else ": " + "; ".join(verdict.reasons)),
        "",
    ]
    return "\n".join(lines)


def append_results(text: str, path: Path = RESULTS) -> None:
    """Add the run under the "## Soak" heading at the end of RESULTS.md (bench/run.py keeps it)."""
    current = path.read_text() if path.exists() else "# Benchmark results\n"
    if SOAK_HEADING not in current.splitlines():
        current = (
            current.rstrip("\n") + f"\n\n{SOAK_HEADING}\n\nRuns of `bench/soak.py` (`make bench-soak`), newest last.\n"
        )
    path.write_text(current.rstrip("\n") + "\n\n" + text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30, help="how long the load runs (default 30)")
    parser.add_argument("--concurrency", type=int, default=8, help="load threads, each one request at a time (8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (2)")
    parser.add_argument(
        "--warmup", type=float, help="seconds before the reference sample (default: 1/6 of the run, at most 120)"
    )
    parser.add_argument("--sample-every", type=float, default=10, help="seconds between samples (10)")
    parser.add_argument("--max-requests", type=int, default=10_000_000, help="stop after this many requests")
    parser.add_argument("--rss-tolerance", type=float, default=0.10, help="largest RSS change allowed after warm-up")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    duration = args.minutes * 60
    warmup = args.warmup if args.warmup is not None else min(120.0, duration / 6)
    expected = {k.name: k.expect for k in KINDS}
    tally, stop, samples = Tally(), threading.Event(), []
    budget = iter(range(args.max_requests))  # next() on a range iterator is atomic under the GIL
    with (
        tempfile.TemporaryDirectory(prefix="mldeploy-soak-log-") as logs,
        serve(args.workers, Path(logs) / "server.log") as (port, proc),
    ):
        print(
            f"soak: {args.minutes:g} min at c={args.concurrency} against {args.workers} workers on {HOST}:{port} "
            f"(master {proc.pid}, workers {children(proc.pid)}); warm-up {warmup:.0f} s",
            flush=True,
        )
        start = time.monotonic()
        deadline = start + duration
        threads = [
            threading.Thread(target=load, args=(port, i, deadline, budget, stop, tally), daemon=True)
            for i in range(args.concurrency)
        ]
        for t in threads:
            t.start()
        try:
            for tick in itertools.count():
                now = time.monotonic()
                if now >= deadline or not any(t.is_alive() for t in threads) or proc.poll() is not None:
                    break
                samples.append(sample(proc.pid, now - start))
                last = samples[-1]
                rss = ", ".join(f"{pid}: {r / 1024:.1f} MiB {f} fds" for pid, (r, f) in sorted(last.workers.items()))
                print(f"  {last.at:6.0f} s  {tally.total:>9,} requests  {rss}", flush=True)
                time.sleep(max(0.0, start + (tick + 1) * args.sample_every - time.monotonic()))
        finally:
            stop.set()
            for t in threads:
                t.join(60)
        samples.append(sample(proc.pid, time.monotonic() - start))
        elapsed = time.monotonic() - start
        if proc.poll() is not None:
            print(Path(logs, "server.log").read_text()[-4000:], file=sys.stderr)
        server_log = Path(logs, "server.log").read_text()
    verdict = judge(samples, warmup, tally, args.rss_tolerance, expected)
    if proc.returncode not in (None, 0, -signal.SIGTERM):
        verdict.ok = False
        verdict.reasons.append(f"the server exited with {proc.returncode}")
    tracebacks = server_log.count("Traceback")
    if tracebacks:
        verdict.ok = False
        verdict.reasons.append(f"{tracebacks} tracebacks in the server's log")
    text = report(args, elapsed, warmup, tally, verdict)
    print("\n" + text)
    if not args.no_write:
        append_results(text)
        print(f"appended to {RESULTS}")
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
