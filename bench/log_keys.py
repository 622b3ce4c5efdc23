"""What the prediction log's request ids cost its inserts: random keys (UUIDv4, as nginx's
``$request_id`` and many clients make them) against time-ordered ones (the service's UUIDv7),
into the same SQLite store, in one run.

    python bench/log_keys.py [--rows 300000]

Inserts one-row records (the seed row's packed inputs and answer) in batches of 1,000, as the
writer thread does, and prints the CPU and wall time per insert as the table grows. Asserts
nothing; the store is a throwaway file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from mldeploy.monitoring.records import new_request_id  # noqa: E402
from mldeploy.monitoring.store import open_store  # noqa: E402

INPUTS = b'J{"columns":["sepal_length","sepal_width","petal_length","petal_width"],"data":[[5.0,3.2,1.5,0.3]]}'
OUTPUTS = b'J[{"Class":"setosa","Probabilities":{"setosa":1.0,"versicolor":0.0,"virginica":0.0}}]'
BATCH = 1_000
KEYS = {"random (UUIDv4)": lambda: uuid.uuid4().hex, "time-ordered (UUIDv7)": new_request_id}


def run(make_id, rows: int, report_every: int) -> list[tuple[int, float, float]]:
    """(rows so far, CPU µs per insert, wall µs per insert) over each ``report_every`` rows."""
    folder = Path(tempfile.mkdtemp(prefix="mldeploy-log-keys-"))
    store = open_store(str(folder / "predictions.sqlite3"))
    out, cpu, wall = [], 0.0, 0.0
    try:
        for done in range(BATCH, rows + 1, BATCH):
            batch = [(make_id(), "default", "v1", time.time(), 1, INPUTS, OUTPUTS) for _ in range(BATCH)]
            c, w = time.process_time(), time.perf_counter()
            store.insert(batch)
            cpu += time.process_time() - c
            wall += time.perf_counter() - w
            if done % report_every == 0:
                out.append((done, cpu / report_every * 1e6, wall / report_every * 1e6))
                cpu = wall = 0.0
    finally:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=300_000)
    args = parser.parse_args()
    every = max(BATCH, args.rows // 6 // BATCH * BATCH)
    results = {name: run(make, args.rows, every) for name, make in KEYS.items()}
    print(f"SQLite inserts of one-row records, batches of {BATCH:,}; load {os.getloadavg()}")
    print("| rows in the table | " + " | ".join(f"{name}: CPU / wall µs per insert" for name in KEYS) + " |")
    print("| ---: |" + " ---: |" * len(KEYS))
    for i, (done, _, _) in enumerate(next(iter(results.values()))):
        cells = " | ".join(f"{results[name][i][1]:.1f} / {results[name][i][2]:.1f}" for name in KEYS)
        print(f"| {done:,} | {cells} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
