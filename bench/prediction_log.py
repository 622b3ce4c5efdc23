"""What the prediction log costs: ``record()`` on the caller's thread, the writer's rows/s, and
the served figures the issue holds it to: ``/predict`` at c=16 and 10,000-row batches, log off,
in SQLite and in PostgreSQL, in one run.

    python bench/prediction_log.py [--calls 50000] [--batch-calls 2000] [--postgres URL | --no-postgres]
                                   [--no-served] [--rounds 3] [--seconds 3] [--no-write]

For each backend (a SQLite file in a temporary folder; PostgreSQL at ``--postgres``, else a
throwaway local cluster from Debian's binaries, as the tests make it):

- ``record()`` in µs per call, for 1-row and 100-row requests, while the writer sleeps (the
  cost a request pays by itself) and while it writes (the GIL is shared with the writer thread;
  the queue is unbounded for this one, since recording flat out outruns any writer);
- the writer's rows/s: rows queued while it sleeps, then timed from ``flush()`` to done, in its
  normal batches (encoding, inserting, committing);
- end to end: rows/s from the first ``record()`` to the end of ``close()``, recording flat out.

Rows are Iris rows with a classifier's answer (class and three probabilities).

Served (unless ``--no-served``): three ``python -m mldeploy serve --workers 2`` servers on
127.0.0.1, the same model, with the log off (``MLDEPLOY_LOG_PREDICTIONS=false``), in SQLite (the
default, a file in the model directory) and in PostgreSQL (``MLDEPLOY_LOG_DATABASE``). Each round
runs, on each server in turn, wrk at c=16 with the seed row, then wrk at 2 connections with a
10,000-row batch (the ``records`` form of bench/run.py), each batch on a new connection
(``Connection: close``): kept alive, both connections could land on one of the 2 workers for the
whole run, which halved the rows/s of that run whatever the log did. Each figure is the median
over the rounds, and the ratios are log on / log off. Server CPU is the gunicorn processes'
(the log's writer threads included); the local PostgreSQL cluster's CPU is given beside it, since
it shares the machine. The servers' /metrics then say how many rows each log wrote and dropped.
The figures and the machine's load average are appended to bench/RESULTS.md (unless
``--no-write``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))

import run as served_bench  # noqa: E402 - bench/run.py: its servers, bodies and wrk runs
from run import BATCH_HEADERS  # noqa: E402 - a new connection per batch: the worker free then takes it

from mldeploy.contract import CLASS, PROBABILITIES  # noqa: E402
from mldeploy.monitoring import PredictionLog  # noqa: E402
from mldeploy.monitoring.writer import BATCH_SIZE  # noqa: E402

ROW = {"sepal_length": 5.0, "sepal_width": 3.2, "petal_length": 1.5, "petal_width": 0.3}
ANSWER = {CLASS: "setosa", PROBABILITIES: {"setosa": 1.0, "versicolor": 0.0, "virginica": 0.0}}
WARM_UP = 1_000
ASLEEP = {"batch_size": 10**12, "flush_interval": 3600.0, "queue_size": 10**12}


def record_calls(log: PredictionLog, prefix: str, calls: int, rows_per_call: int) -> float:
    """Seconds per ``record()`` call over ``calls`` calls of ``rows_per_call`` rows each."""
    rows, outputs = [ROW] * rows_per_call, [ANSWER] * rows_per_call
    ids = [f"{prefix}-{i}" for i in range(calls)]
    start = time.perf_counter()
    for request_id in ids:
        log.record(request_id, "v1", rows, outputs)
    return (time.perf_counter() - start) / calls


def measure(database: str, calls: int, batch_calls: int) -> dict[str, float]:
    """The figures for one backend (each measured on a fresh log; the database accumulates)."""
    figures = {}
    # The writer asleep: the caller's own cost, then the writer's speed on what was queued.
    log = PredictionLog(database, **ASLEEP)
    record_calls(log, "warm-up", WARM_UP, 1)  # starts the writer thread; warms the caches
    figures["record_1_idle_us"] = record_calls(log, "idle1", calls, 1) * 1e6
    figures["record_100_idle_us"] = record_calls(log, "idle100", batch_calls, 100) * 1e6
    queued = log.queued
    log.batch_size = BATCH_SIZE  # the writer's normal batches from here on
    start = time.perf_counter()
    assert log.flush(600), "the writer did not finish"
    figures["writer_rows_per_s"] = queued / (time.perf_counter() - start)
    log.close()
    # The writer awake, recording flat out: what a busy worker sees. (Flat out, 100-row calls
    # outrun any writer: the queue is unbounded here, so that every row is counted.)
    log = PredictionLog(database, queue_size=10**12)
    record_calls(log, "busy-warm-up", WARM_UP, 1)
    start = time.perf_counter()
    figures["record_1_busy_us"] = record_calls(log, "busy1", calls, 1) * 1e6
    figures["record_100_busy_us"] = record_calls(log, "busy100", batch_calls, 100) * 1e6
    assert log.close(600), "the writer did not finish"
    figures["end_to_end_rows_per_s"] = (calls + 100 * batch_calls + WARM_UP) / (time.perf_counter() - start)
    assert log.dropped == 0, f"{log.dropped} records dropped"
    return figures


@contextlib.contextmanager
def postgres_database(url: str | None) -> Iterator[tuple[str | None, int | None]]:
    """``url``, else a database on a throwaway local cluster, else None (no binaries); and the
    local cluster's postmaster PID (None for ``url``), whose processes' CPU is counted."""
    if url:
        yield url, None
        return
    from tests.postgres import bin_dir, create_database, throwaway_cluster

    if bin_dir() is None:
        print("PostgreSQL: skipped (no server binaries: apt-get install postgresql, or pass --postgres URL)")
        yield None, None
        return
    with throwaway_cluster() as server:
        yield create_database(server, "bench"), server.pid


# -- served: /predict with the log off, in SQLite, in PostgreSQL --------------------------------------

OFF, SQLITE, POSTGRES = "off", "sqlite", "postgresql"
BATCH_ROWS = 10_000
BATCH_KEY = f"records-{BATCH_ROWS}"


def serving(name: str, work: Path, database: str | None) -> served_bench.Server:
    """``mldeploy serve --workers 2`` with the log off (``database`` None for OFF), in the model
    directory's SQLite file, or in ``database``."""
    env = {"MLDEPLOY_MODEL_DIR": str(work / f"models-{name}")}
    if name == OFF:
        env["MLDEPLOY_LOG_PREDICTIONS"] = "false"
    elif database:
        env["MLDEPLOY_LOG_DATABASE"] = database
    port = served_bench.free_port()
    argv = [sys.executable, "-m", "mldeploy", "serve", "--workers", "2", "--host", served_bench.HOST]
    return served_bench.Server(name, [*argv, "--port", str(port)], BENCH.parent, served_bench.base_env(**env), port)


def scrape(server: served_bench.Server) -> dict[str, float]:
    """The log's counters from the server's /metrics (all workers)."""
    from prometheus_client.parser import text_string_to_metric_families

    url = f"http://{served_bench.HOST}:{server.port}/metrics"
    with urllib.request.urlopen(url, timeout=30) as res:
        text = res.read().decode()
    found = {"written": 0.0, "dropped": 0.0}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "mldeploy_prediction_log_rows_total":
                found["written"] += sample.value
            elif sample.name == "mldeploy_prediction_log_dropped_total":
                found["dropped"] += sample.value
    return found


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def served(database: str | None, rounds: int, postgres_pid: int | None = None) -> dict:
    """Run the rounds; returns figures per server, the log's counters and the load averages.
    ``postgres_pid``: the local cluster's postmaster, whose CPU is measured during the runs on
    the PostgreSQL server."""
    names = [OFF, SQLITE] + ([POSTGRES] if database else [])
    figures: dict = {n: {} for n in names}
    loads = [load_average()]
    with tempfile.TemporaryDirectory(prefix="mldeploy-bench-log-") as tmp:
        work = Path(tmp)
        files = served_bench.bodies(work)
        servers = {n: serving(n, work, database if n == POSTGRES else None) for n in names}
        try:
            for name, server in servers.items():
                served_bench.cold_start(server)  # trains in its own model directory (same seed)
                if not served_bench.batch_answered(server.port, files[BATCH_KEY], BATCH_ROWS):
                    raise RuntimeError(f"{name}: the 10,000-row batch was not answered")
            runs: dict[tuple[str, str], list[dict]] = {}
            for round_ in range(rounds):
                for key, body, connections, headers in (
                    ("c16", files["single"], 16, ()),
                    (BATCH_KEY, files[BATCH_KEY], 2, BATCH_HEADERS),
                ):
                    for name, server in servers.items():
                        database_pid = postgres_pid if name == POSTGRES else None
                        database_cpu = served_bench.cpu_seconds(database_pid) if database_pid else 0.0
                        w = served_bench.wrk(server.port, body, connections, server.proc.pid, headers)
                        if database_pid:
                            database_cpu = served_bench.cpu_seconds(database_pid) - database_cpu
                            w["database_cpu_per_request"] = database_cpu / max(w["requests"], 1)
                        if w["errors"]:
                            raise RuntimeError(f"{name} {key}: {w['errors']} errors in {w}")
                        runs.setdefault((name, key), []).append(w)
                        rate = w["rps"] * (BATCH_ROWS if key == BATCH_KEY else 1)
                        unit = "rows/s" if key == BATCH_KEY else "req/s"
                        served_bench.log(f"[{round_ + 1}/{rounds}] {name} {key}: {rate:,.0f} {unit}")
                loads.append(load_average())
            for (name, key), ws in runs.items():
                scale = BATCH_ROWS if key == BATCH_KEY else 1
                figures[name][key] = median(w["rps"] for w in ws) * scale
                figures[name][f"{key}_cpu_us"] = median(w["cpu_per_request"] for w in ws) * 1e6 / scale
                figures[name][f"{key}_p99_ms"] = median(w["p99_us"] for w in ws) / 1000
                if "database_cpu_per_request" in ws[0]:
                    figures[name][f"{key}_db_cpu_us"] = median(w["database_cpu_per_request"] for w in ws) * 1e6 / scale
            # Each answered row once: what wrk counted, against what the logs wrote and dropped.
            time.sleep(3)  # the writers' flush interval is 1 s
            for name, server in servers.items():
                answered = sum(
                    w["requests"] * (BATCH_ROWS if key == BATCH_KEY else 1)
                    for (n, key), ws in runs.items()
                    if n == name
                    for w in ws
                )
                figures[name]["answered_rows"] = answered
                figures[name].update(scrape(server))
        finally:
            for server in servers.values():
                server.stop()
    return {"figures": figures, "loads": loads}


def served_report(result: dict) -> str:
    """The figures per server, and the issue's ratios (log on / log off)."""
    f = result["figures"]
    names = list(f)
    off = f[OFF]

    def row(label: str, cell) -> str:
        return f"| {label} | " + " | ".join(cell(n) for n in names) + " |"

    def database_cpu(name: str, key: str, fmt: str) -> str:
        value = f[name].get(f"{key}_db_cpu_us")
        return "-" if value is None else fmt.format(value)

    lines = [
        "| measure | " + " | ".join(f"log {n}" for n in names) + " |",
        "| --- |" + " ---: |" * len(names),
        row("/predict c=16: req/s", lambda n: f"{f[n]['c16']:,.0f}"),
        row("/predict c=16: p99 ms", lambda n: f"{f[n]['c16_p99_ms']:.2f}"),
        row("/predict c=16: server CPU µs per request", lambda n: f"{f[n]['c16_cpu_us']:,.0f}"),
        row("/predict c=16: PostgreSQL CPU µs per request", lambda n: database_cpu(n, "c16", "{:,.0f}")),
        row("10,000-row batch: rows/s", lambda n: f"{f[n][BATCH_KEY]:,.0f}"),
        row("10,000-row batch: server CPU µs per row", lambda n: f"{f[n][BATCH_KEY + '_cpu_us']:.2f}"),
        row("10,000-row batch: PostgreSQL CPU µs per row", lambda n: database_cpu(n, BATCH_KEY, "{:.2f}")),
        row("rows answered (wrk)", lambda n: f"{f[n]['answered_rows']:,}"),
        row(
            "rows logged / dropped (/metrics)",
            lambda n: "-" if n == OFF else f"{f[n]['written']:,.0f} / {f[n]['dropped']:,.0f}",
        ),
        "",
        "| must hold (log on / log off, same run) | measured | goal | |",
        "| --- | ---: | ---: | --- |",
    ]
    for name in names[1:]:
        for key, label, goal in (("c16", "/predict c=16 req/s", 0.85), (BATCH_KEY, "10,000-row batch rows/s", 0.7)):
            value = f[name][key] / off[key]
            verdict = "met" if value >= goal else "NOT met"
            lines.append(f"| {label}, {name} | {value:.2f}x | >= {goal:.2f}x | {verdict} |")
        for key, label in (("c16", "c=16 request"), (BATCH_KEY, "batch row")):
            value = f[name][f"{key}_cpu_us"] / off[f"{key}_cpu_us"]
            lines.append(f"| server CPU per {label}, {name} (less noisy than req/s) | {value:.2f}x | | |")
            if f"{key}_db_cpu_us" in f[name]:
                value = (f[name][f"{key}_cpu_us"] + f[name][f"{key}_db_cpu_us"]) / off[f"{key}_cpu_us"]
                lines.append(f"| server + PostgreSQL CPU per {label}, {name} | {value:.2f}x | | |")
    return "\n".join(lines)


def append_results(table: str, result: dict, rounds: int, seconds: float) -> None:
    section = (
        f"\n## Prediction log: served, {datetime.now(UTC):%Y-%m-%d %H:%M UTC}\n\n"
        f"- `python bench/prediction_log.py`: machine {served_bench.machine()}; 3 servers (`mldeploy serve "
        f"--workers 2`, 127.0.0.1) with the log off, in SQLite (the default) and in PostgreSQL (a throwaway "
        f"local cluster); wrk 1 thread, {seconds:g} s per run, the seed row at c=16 and a 10,000-row batch "
        f"(records form) at 2 connections, a new connection per batch; medians of {rounds} rounds interleaved "
        f"across the servers.\n"
        f"- load average (1, 5, 15 min) before and after each round: {'; '.join(result['loads'])}. The load "
        f"generator and other work share the 2 cores.\n\n{table}\n"
    )
    results = served_bench.RESULTS
    results.write_text((results.read_text() if results.exists() else "") + section)
    served_bench.log(f"appended to {results}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000, help="1-row record() calls per measure")
    parser.add_argument("--batch-calls", type=int, default=2_000, help="100-row record() calls per measure")
    parser.add_argument("--postgres", metavar="URL", help="an existing PostgreSQL database to write to")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    parser.add_argument("--no-served", action="store_true", help="only the in-process figures (no servers, no wrk)")
    parser.add_argument("--rounds", type=int, default=3, help="served rounds (the median is reported)")
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per wrk run")
    parser.add_argument("--no-write", action="store_true", help="do not append the served figures to RESULTS.md")
    args = parser.parse_args(argv)
    rows = args.calls + 100 * args.batch_calls
    print(f"{args.calls:,} one-row and {args.batch_calls:,} 100-row record() calls per measure ({rows:,} rows)")
    print(
        f"{'backend':<11} {'record 1 row':>13} {'record 100':>11} {'busy 1 row':>11} {'busy 100':>9} "
        f"{'writer rows/s':>14} {'end-to-end rows/s':>18}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        backends = [("sqlite", str(Path(tmp) / "bench.sqlite3"))]
        postgres_pid = None
        with contextlib.ExitStack() as stack:
            if not args.no_postgres:
                url, postgres_pid = stack.enter_context(postgres_database(args.postgres))
                if url:
                    backends.append(("postgresql", url))
            for name, database in backends:
                f = measure(database, args.calls, args.batch_calls)
                print(
                    f"{name:<11} {f['record_1_idle_us']:>10.2f} µs {f['record_100_idle_us']:>8.2f} µs "
                    f"{f['record_1_busy_us']:>8.2f} µs {f['record_100_busy_us']:>6.2f} µs "
                    f"{f['writer_rows_per_s']:>14,.0f} {f['end_to_end_rows_per_s']:>18,.0f}"
                )
            if args.no_served:
                return
            if shutil.which("wrk") is None:
                print("served: skipped (wrk is missing: make bench-deps)")
                return
            served_bench.SECONDS = args.seconds
            os.environ.setdefault("OMP_NUM_THREADS", "1")
            postgres_url = dict(backends).get("postgresql")
            result = served(postgres_url, args.rounds, postgres_pid)
            table = served_report(result)
            print(f"\nserved (load average {'; '.join(result['loads'])}):\n{table}")
            if not args.no_write:
                append_results(table, result, args.rounds, args.seconds)


if __name__ == "__main__":
    main()
