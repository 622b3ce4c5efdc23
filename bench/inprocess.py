"""In-process throughput of ``Modeler.predict`` and ``predict_proba`` on a big DataFrame.

    python bench/inprocess.py [--rows 1000000] [--repeat 5]

Prints rows/s for each (best of ``--repeat`` runs, after one warm-up), next to scikit-learn's own
``predict``/``predict_proba`` on the same frame as a yardstick. The model is trained on Iris in a
temporary directory; the rows are uniform over the training ranges.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modeler.modeler import Modeler


def random_rows(modeler: Modeler, n: int, seed: int = 0) -> pd.DataFrame:
    """``n`` rows drawn uniformly over the model's training ranges."""
    ranges = modeler.metadata["feature_ranges"]
    lo = np.array([ranges[f][0] for f in modeler.features])
    hi = np.array([ranges[f][1] for f in modeler.features])
    values = np.random.default_rng(seed).uniform(lo, hi, size=(n, len(lo)))
    return pd.DataFrame(values, columns=list(modeler.features))


def best_seconds(fn: Callable[[], object], repeat: int) -> float:
    """The fastest of ``repeat`` timed calls, after one untimed warm-up."""
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        modeler = Modeler(tmp).fit()
        frame = random_rows(modeler, args.rows)
        estimator = modeler.ensure_ready().estimator
        # The figures are only worth printing if the answers are sklearn's.
        assert modeler.predict(frame) == estimator.predict(frame).tolist()
        assert np.array_equal(modeler.predict_proba(frame).to_numpy(), estimator.predict_proba(frame))
        print(f"{args.rows:,} rows x {frame.shape[1]} features, best of {args.repeat}")
        for name, fn in (
            ("Modeler.predict", lambda: modeler.predict(frame)),
            ("Modeler.predict_proba", lambda: modeler.predict_proba(frame)),
            ("sklearn predict", lambda: estimator.predict(frame)),
            ("sklearn predict_proba", lambda: estimator.predict_proba(frame)),
        ):
            seconds = best_seconds(fn, args.repeat)
            print(f"  {name:<24} {seconds * 1000:8.1f} ms  {args.rows / seconds / 1e6:6.2f} M rows/s")


if __name__ == "__main__":
    main()
