"""What the prediction log costs: ``record()`` on the caller's thread, and the writer's rows/s.

    python bench/prediction_log.py [--calls 50000] [--batch-calls 2000] [--postgres URL | --no-postgres]

For each backend (a SQLite file in a temporary folder; PostgreSQL at ``--postgres``, else a
throwaway local cluster from Debian's binaries, as the tests make it):

- ``record()`` in µs per call, for 1-row and 100-row requests, while the writer sleeps (the
  cost a request pays by itself) and while it writes (the GIL is shared with the writer thread;
  the queue is unbounded for this one, since recording flat out outruns any writer);
- the writer's rows/s: rows queued while it sleeps, then timed from ``flush()`` to done, in its
  normal batches (encoding, inserting, committing);
- end to end: rows/s from the first ``record()`` to the end of ``close()``, recording flat out.

Rows are Iris rows with a classifier's answer (class and three probabilities).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mldeploy.contract import CLASS, PROBABILITIES
from mldeploy.monitoring import PredictionLog
from mldeploy.monitoring.writer import BATCH_SIZE

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
def postgres_database(url: str | None) -> Iterator[str | None]:
    """``url``, else a database on a throwaway local cluster, else None (no binaries)."""
    if url:
        yield url
        return
    from tests.postgres import bin_dir, create_database, throwaway_cluster

    if bin_dir() is None:
        print("PostgreSQL: skipped (no server binaries: apt-get install postgresql, or pass --postgres URL)")
        yield None
        return
    with throwaway_cluster() as server:
        yield create_database(server, "bench")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50_000, help="1-row record() calls per measure")
    parser.add_argument("--batch-calls", type=int, default=2_000, help="100-row record() calls per measure")
    parser.add_argument("--postgres", metavar="URL", help="an existing PostgreSQL database to write to")
    parser.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = parser.parse_args(argv)
    rows = args.calls + 100 * args.batch_calls
    print(f"{args.calls:,} one-row and {args.batch_calls:,} 100-row record() calls per measure ({rows:,} rows)")
    print(
        f"{'backend':<11} {'record 1 row':>13} {'record 100':>11} {'busy 1 row':>11} {'busy 100':>9} "
        f"{'writer rows/s':>14} {'end-to-end rows/s':>18}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        backends = [("sqlite", str(Path(tmp) / "bench.sqlite3"))]
        with contextlib.ExitStack() as stack:
            if not args.no_postgres:
                url = stack.enter_context(postgres_database(args.postgres))
                if url:
                    backends.append(("postgresql", url))
            for name, database in backends:
                f = measure(database, args.calls, args.batch_calls)
                print(
                    f"{name:<11} {f['record_1_idle_us']:>10.2f} µs {f['record_100_idle_us']:>8.2f} µs "
                    f"{f['record_1_busy_us']:>8.2f} µs {f['record_100_busy_us']:>6.2f} µs "
                    f"{f['writer_rows_per_s']:>14,.0f} {f['end_to_end_rows_per_s']:>18,.0f}"
                )


if __name__ == "__main__":
    main()
