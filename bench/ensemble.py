"""The tutorial's 100-tree RandomForest: scikit-learn's ``predict_proba`` against the compiled path.

    python bench/ensemble.py [--trees 100] [--rows 10000] [--repeat 7]

The forest is the tutorial's: ``np.random.seed(42)``, 1,000 rows of 5 standard normal features,
label ``x0 + x1 > 0``, ``RandomForestClassifier(n_estimators=100, random_state=42)``. Both sides
are timed in the same run, on the same rows, best of ``--repeat`` after one warm-up, as wall-clock
time and as this process's CPU time (which other load on a shared machine disturbs less). One row
is a Python list for the compiled path (what a request holds) and a 1x5 array for scikit-learn;
the batch is a ``--rows`` x 5 array for both. The answers are checked equal, bit for bit.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sklearn.ensemble import RandomForestClassifier

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modeler.compiled_ensemble import CompiledEnsemble


def tutorial_forest(trees: int) -> RandomForestClassifier:
    """The tutorial's forest on its synthetic data."""
    np.random.seed(42)
    X = np.random.randn(1000, 5)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return RandomForestClassifier(n_estimators=trees, random_state=42).fit(X, y)


def best(fn: Callable[[], object], repeat: int, calls: int = 1) -> tuple[float, float]:
    """The fastest (wall seconds, CPU seconds) per call of ``repeat`` runs of ``calls`` calls."""
    fn()
    wall, cpu = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(calls):
            fn()
        wall.append((time.perf_counter() - w0) / calls)
        cpu.append((time.process_time() - c0) / calls)
    return min(wall), min(cpu)


def line(name: str, sklearn: tuple[float, float], compiled: tuple[float, float], unit: float, label: str) -> str:
    (sw, sc), (cw, cc) = sklearn, compiled
    return (
        f"{name:<14} sklearn {sw * unit:9.1f} {label} wall {sc * unit:9.1f} {label} cpu | "
        f"compiled {cw * unit:8.1f} {label} wall {cc * unit:8.1f} {label} cpu | "
        f"ratio {sw / cw:6.1f}x wall {sc / cc:6.1f}x cpu"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", type=int, default=100)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)

    forest = tutorial_forest(args.trees)
    started = time.perf_counter()
    compiled = CompiledEnsemble.from_estimator(forest)
    compile_ms = (time.perf_counter() - started) * 1e3
    rows = np.random.default_rng(0).standard_normal((args.rows, 5))
    one = rows[:1]
    one_list = one[0].tolist()

    batch_equal = np.array_equal(compiled.predict_proba(rows), forest.predict_proba(rows))
    one_equal = compiled.predict_one(one_list).probabilities == tuple(forest.predict_proba(one)[0].tolist())
    compiled.predict_proba(rows[:10])  # builds the bit-vector tables before timing

    one_sklearn = best(lambda: forest.predict_proba(one), args.repeat, calls=10)
    one_compiled = best(lambda: compiled.predict_one(one_list), args.repeat, calls=1000)
    batch_sklearn = best(lambda: forest.predict_proba(rows), args.repeat)
    batch_compiled = best(lambda: compiled.predict_proba(rows), args.repeat)

    print(f"tutorial forest: {args.trees} trees on 5 features; compiled in {compile_ms:.0f} ms")
    print(line("one row", one_sklearn, one_compiled, 1e6, "us"))
    print(line(f"{args.rows:,} rows", batch_sklearn, batch_compiled, 1e3, "ms"))
    print(f"answers equal: one row {one_equal}, {args.rows:,} rows {batch_equal}")


if __name__ == "__main__":
    main()
