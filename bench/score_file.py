"""``python -m mldeploy score`` on a generated CSV: time, rows/s and peak memory (RSS).

    python bench/score_file.py [--rows 5000000] [--small 500000] [--chunk-rows N] [--dask]

Generates a CSV with an id column, the four Iris features and a few bad cells, trains a model in a
temporary directory, then runs the command as a real process on a small file and on the big one.
Peak RSS is the kernel's own figure for that process (``wait4``): with flat memory the two peaks
are about the same although the big file has ten times the rows.

This driver imports only the standard library, and does the heavy work (generating, training) in
child processes: the kernel counts a child's memory from the moment it is forked, so a driver that
had grown big itself would inflate the children's peaks.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# One bad cell in this many rows, so that the errors file is exercised too.
BAD_EVERY = 100_000


def generate(path: Path, rows: int, seed: int = 0, block: int = 1_000_000) -> None:
    """Write ``rows`` rows of plausible flowers to ``path``, a block at a time."""
    import numpy as np
    import pandas as pd

    features = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    rng = np.random.default_rng(seed)
    low, high = np.array([4.3, 2.0, 1.0, 0.1]), np.array([7.9, 4.4, 6.9, 2.5])
    with open(path, "w", encoding="utf-8", newline="") as handle:
        for start in range(0, rows, block):
            n = min(block, rows - start)
            frame = pd.DataFrame(np.round(rng.uniform(low, high, size=(n, 4)), 1), columns=features)
            frame.insert(0, "id", np.arange(start, start + n))
            frame = frame.astype({"petal_width": object})
            frame.loc[frame["id"] % BAD_EVERY == 7, "petal_width"] = "n/a"
            frame.to_csv(handle, header=start == 0, index=False)


def measured(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run ``argv``; returns (seconds, peak RSS in MiB, its stdout). Progress goes to our stderr."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this child's own accounting (ru_maxrss in KiB)
    seconds = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    proc.returncode = code
    if code:
        raise SystemExit(f"{' '.join(argv[1:4])} exited with {code}")
    return seconds, usage.ru_maxrss / 1024, out.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--small", type=int, default=500_000, help="rows of the comparison run")
    parser.add_argument("--chunk-rows", type=int, default=None)
    parser.add_argument("--dask", action="store_true", help="score on a local Dask cluster")
    parser.add_argument("--generate", nargs=2, metavar=("PATH", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:  # the child that writes a file
        generate(Path(args.generate[0]), int(args.generate[1]))
        return
    extra = (["--chunk-rows", str(args.chunk_rows)] if args.chunk_rows else []) + (["--dask"] if args.dask else [])
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        env = {**os.environ, "MLDEPLOY_MODEL_DIR": str(tmp_path / "models")}
        subprocess.run([sys.executable, "-m", "mldeploy", "train"], cwd=REPO, env=env, check=True, capture_output=True)
        for rows in (args.small, args.rows):
            path = tmp_path / f"flowers-{rows}.csv"
            subprocess.run([sys.executable, __file__, "--generate", str(path), str(rows)], check=True)
            size = path.stat().st_size / 2**20
            argv = [sys.executable, "-m", "mldeploy", "score", str(path), "--allow-errors", *extra]
            seconds, peak, summary = measured(argv, env)
            print(summary)
            print(
                f"{rows:>12,} rows ({size:,.0f} MiB CSV): {seconds:6.1f} s wall (process start included), "
                f"{rows / seconds:>10,.0f} rows/s, peak RSS {peak:,.0f} MiB",
                flush=True,
            )
            path.unlink()


if __name__ == "__main__":
    main()
