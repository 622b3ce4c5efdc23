"""``python -m mldeploy score`` on a generated CSV: time, rows/s and peak memory (RSS).

    python bench/score_file.py [--rows 5000000] [--small 500000] [--chunk-rows N] [--dask]

Generates a CSV with an id column, the four Iris features and a few bad cells, trains a model in a
temporary directory, then runs the command as a real process on a small file and on the big one.
Peak RSS comes from the kernel's accounting of each child (``wait4``): if memory is flat, the two
peaks are about the same although the big file has ten times the rows.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from modeler.data import IRIS_FEATURES  # noqa: E402
from modeler.modeler import Modeler  # noqa: E402

# One bad cell in this many rows, so that the errors file is exercised too.
BAD_EVERY = 100_000


def generate(path: Path, rows: int, seed: int = 0, block: int = 1_000_000) -> None:
    """Write ``rows`` rows of plausible flowers to ``path`` (in blocks, to keep this script small)."""
    rng = np.random.default_rng(seed)
    low, high = np.array([4.3, 2.0, 1.0, 0.1]), np.array([7.9, 4.4, 6.9, 2.5])
    with open(path, "w", encoding="utf-8", newline="") as handle:
        for start in range(0, rows, block):
            n = min(block, rows - start)
            frame = pd.DataFrame(np.round(rng.uniform(low, high, size=(n, 4)), 1), columns=list(IRIS_FEATURES))
            frame.insert(0, "id", np.arange(start, start + n))
            frame = frame.astype({"petal_width": object})
            frame.loc[frame["id"] % BAD_EVERY == 7, "petal_width"] = "n/a"
            frame.to_csv(handle, header=start == 0, index=False)


def run_score(path: Path, models: Path, extra: list[str]) -> tuple[float, float, str]:
    """Run the command; returns (seconds, peak RSS in MiB, its summary line)."""
    env = {**os.environ, "MLDEPLOY_MODEL_DIR": str(models)}
    argv = [sys.executable, "-m", "mldeploy", "score", str(path), "--allow-errors", *extra]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage, not all children's
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"score exited with {proc.returncode}")
    return seconds, usage.ru_maxrss / 1024, out.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--small", type=int, default=500_000, help="rows of the comparison run")
    parser.add_argument("--chunk-rows", type=int, default=None)
    parser.add_argument("--dask", action="store_true", help="score on a local Dask cluster")
    args = parser.parse_args()
    extra = (["--chunk-rows", str(args.chunk_rows)] if args.chunk_rows else []) + (["--dask"] if args.dask else [])
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        Modeler(tmp_path / "models").fit()
        for rows in (args.small, args.rows):
            path = tmp_path / f"flowers-{rows}.csv"
            generate(path, rows)
            size = path.stat().st_size / 2**20
            seconds, peak, summary = run_score(path, tmp_path / "models", extra)
            print(summary)
            print(
                f"{rows:>12,} rows ({size:,.0f} MiB CSV): {seconds:6.1f} s wall (process start included), "
                f"{rows / seconds:>10,.0f} rows/s, peak RSS {peak:,.0f} MiB"
            )
            path.unlink()


if __name__ == "__main__":
    main()
