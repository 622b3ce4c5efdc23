"""Any scikit-learn model, served (issue 12, point 7): each ratio measured in one run.

    python bench/any_model.py [--seconds 3] [--rounds 3] [--no-append]

1. The tutorial's 100-tree RandomForest on 5 features (``np.random.seed(42)``, ``randn(1000, 5)``,
   label ``x0 + x1 > 0``), imported with ``Modeler.import_model``: one row in process
   (``Modeler.predict_proba`` on a list of 5 numbers) against the forest's own ``predict_proba`` on
   a 1x5 array, and a 10,000-row batch (``Modeler.infer(X).probabilities`` against
   ``predict_proba(X)``), checked equal bit for bit.
2. The same forest served by ``python -m mldeploy serve`` (gunicorn, 2 workers) answering
   ``{"features": [...]}`` at c=16, against the bare framework floor (``bench/floor_app.py``: a
   Flask-RESTful resource that parses the body and returns a fixed answer) under the same load,
   the two interleaved over ``--rounds`` rounds (median of each).
3. A Pipeline with a text column (OneHotEncoder + StandardScaler + LogisticRegression), imported
   with a sample: a 1,000-row records batch served, rows per second at c=1 (one request at a time)
   and c=2 (one per worker), against calling the pipeline in process on the same 1,000 rows
   (``predict`` and ``predict_proba`` on their DataFrame, one call at a time), each a throughput
   over the same time, interleaved; and the CPU time per row of each (the server's process tree
   over its wrk run, the calling process's own), which the machine's other load moves far less.

Loads only 127.0.0.1 on ports it opened, each run bounded in time (wrk -d) and count. Prints the
figures with the load average, and appends them to bench/RESULTS.md unless ``--no-append``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import timeit
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

import run as side  # noqa: E402 - the side-by-side bench's servers and load generator
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import Pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402

from modeler.modeler import Modeler  # noqa: E402

RESULTS = BENCH / "RESULTS.md"
PLANS = ["basic", "plus", "pro"]
FOREST_ROW = [0.5, 1.2, -0.3, 0.8, -1.5]


def tutorial_forest() -> RandomForestClassifier:
    """The tutorial's forest, exactly as it trains it."""
    np.random.seed(42)
    X = np.random.randn(1000, 5)
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    model = RandomForestClassifier(n_estimators=100, random_state=42)
    model.fit(X, y)
    return model


def customers(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "plan": rng.choice(PLANS, n),
            "monthly_spend": rng.gamma(4.0, 10.0, n).round(2),
            "tenure_months": rng.integers(1, 60, n),
        }
    )


def churn_pipeline() -> tuple[Pipeline, pd.DataFrame]:
    frame = customers(2000, 7)
    churn = np.where(0.04 * frame["monthly_spend"] - 0.08 * frame["tenure_months"] > 0, "yes", "no")
    prepare = ColumnTransformer(
        [
            ("plan", OneHotEncoder(handle_unknown="ignore"), ["plan"]),
            ("numbers", StandardScaler(), ["monthly_spend", "tenure_months"]),
        ]
    )
    return Pipeline([("prepare", prepare), ("model", LogisticRegression())]).fit(frame, churn), frame


def best_us(fn, number: int, repeat: int = 5) -> float:
    """The fastest of ``repeat`` runs, in microseconds per call."""
    fn()
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


# -- 1. in process -------------------------------------------------------------------------------


def in_process(forest: RandomForestClassifier, model_dir: Path) -> dict:
    modeler = Modeler(model_dir, lazy_train=False)
    one = np.array([FOREST_ROW])
    assert modeler.predict_proba(FOREST_ROW) == {
        "0": forest.predict_proba(one)[0, 0],
        "1": forest.predict_proba(one)[0, 1],
    }
    X = np.random.default_rng(0).standard_normal((10_000, 5))
    equal = bool(np.array_equal(modeler.infer(X).probabilities, forest.predict_proba(X)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # a bare array: no feature names, as fitted
        sklearn_one = best_us(lambda: forest.predict_proba(one), 20)
        sklearn_batch = best_us(lambda: forest.predict_proba(X), 3)
    modeler_one = best_us(lambda: modeler.predict_proba(FOREST_ROW), 5000)
    modeler_batch = best_us(lambda: modeler.infer(X).probabilities, 3)
    return {
        "sklearn_one_us": sklearn_one,
        "modeler_one_us": modeler_one,
        "one_ratio": sklearn_one / modeler_one,
        "sklearn_batch_ms": sklearn_batch / 1e3,
        "modeler_batch_ms": modeler_batch / 1e3,
        "batch_ratio": sklearn_batch / modeler_batch,
        "batch_equal": equal,
    }


# -- 2. and 3. served ------------------------------------------------------------------------------


def served_server(name: str, model_dir: Path) -> side.Server:
    port = side.free_port()
    argv = [sys.executable, "-m", "mldeploy", "serve", "--workers", "2", "--host", side.HOST, "--port", str(port)]
    return side.Server(name, argv, REPO, side.base_env(MLDEPLOY_MODEL_DIR=str(model_dir)), port)


def floor_server() -> side.Server:
    port = side.free_port()
    gunicorn = [sys.executable, "-m", "gunicorn", "-c", str(BENCH / "gunicorn_bench.conf.py"), "--chdir", str(BENCH)]
    return side.Server(
        "floor", [*gunicorn, "--bind", f"{side.HOST}:{port}", "floor_app:app"], BENCH, side.base_env(), port
    )


def started(server: side.Server, body: bytes, check) -> None:
    """Start ``server`` and wait for a correct answer to ``body``."""
    server.start()
    deadline = time.monotonic() + side.START_TIMEOUT
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {server.proc.returncode}")
        try:
            status, answer = side.post(server.port, body, timeout=60)
        except OSError:
            time.sleep(0.05)
            continue
        if status == 200 and check(answer):
            return
        raise RuntimeError(f"{server.name} answered {status}: {str(answer)[:300]}")
    raise TimeoutError(f"{server.name} did not answer within {side.START_TIMEOUT} s")


def served_forest(forest: RandomForestClassifier, model_dir: Path, work: Path, rounds: int) -> dict:
    body_file = work / "forest-one.json"
    body_file.write_text(json.dumps({"features": FOREST_ROW}))
    expected = int(forest.predict(np.array([FOREST_ROW]))[0])
    mldeploy, floor = served_server("mldeploy", model_dir), floor_server()
    runs: dict[str, list[float]] = {"mldeploy": [], "floor": []}
    try:
        started(mldeploy, body_file.read_bytes(), lambda a: a.get("Class") == expected)
        started(floor, body_file.read_bytes(), lambda a: "Class" in a)
        for server in (mldeploy, floor):  # warm-up, not counted
            side.wrk(server.port, body_file, 16)
        for _ in range(rounds):
            for server in (mldeploy, floor):
                summary = side.wrk(server.port, body_file, 16)
                if summary["errors"]:
                    raise RuntimeError(f"{server.name}: {summary['errors']} errors under load")
                runs[server.name].append(summary["rps"])
    finally:
        mldeploy.stop()
        floor.stop()
    rps = {name: statistics.median(values) for name, values in runs.items()}
    return {"mldeploy_rps": rps["mldeploy"], "floor_rps": rps["floor"], "ratio": rps["mldeploy"] / rps["floor"]}


def calls_per_second(fn, seconds: float) -> tuple[float, float]:
    """How many times ``fn`` runs per second, called back to back for ``seconds``, and the CPU
    seconds each call took (process time: other work on the machine barely moves it)."""
    calls, start, cpu = 0, time.perf_counter(), time.process_time()
    while (elapsed := time.perf_counter() - start) < seconds:
        fn()
        calls += 1
    return calls / elapsed, (time.process_time() - cpu) / calls


def served_pipeline(pipeline: Pipeline, model_dir: Path, work: Path, rounds: int, seconds: float) -> dict:
    """Rows per second: the pipeline called in process on the 1,000 rows' DataFrame, one call at a
    time, and the same rows as one records body served at c=1 and c=2. Each side is a throughput
    over ``seconds``, interleaved round by round, so the machine's load falls on both alike. Also
    the CPU time per row of each (the server's: its process tree's, over the run), a figure the
    machine's other load moves far less than throughput."""
    rows = customers(1000, 21)
    body_file = work / "pipeline-1000.json"
    body_file.write_text(rows.to_json(orient="records"))
    labels = pipeline.predict(rows).tolist()
    server = served_server("mldeploy-pipeline", model_dir)
    runs: dict[str, list[float]] = {"in process": [], "c=1": [], "c=2": []}
    cpu: dict[str, list[float]] = {"in process": [], "c=1": [], "c=2": []}  # CPU seconds per row
    try:
        started(server, body_file.read_bytes(), lambda a: [p["Class"] for p in a["Predictions"]] == labels)
        side.wrk(server.port, body_file, 2)  # warm-up: both workers have unpickled the pipeline
        for _ in range(rounds):
            calls, call_cpu = calls_per_second(lambda: (pipeline.predict(rows), pipeline.predict_proba(rows)), seconds)
            runs["in process"].append(calls * len(rows))
            cpu["in process"].append(call_cpu / len(rows))
            for connections in (1, 2):
                summary = side.wrk(server.port, body_file, connections, server.proc.pid)
                if summary["errors"]:
                    raise RuntimeError(f"pipeline: {summary['errors']} errors under load")
                runs[f"c={connections}"].append(summary["rps"] * len(rows))
                cpu[f"c={connections}"].append(summary["cpu_per_request"] / len(rows))
    finally:
        server.stop()
    rates = {name: statistics.median(values) for name, values in runs.items()}
    cpu_us = {name: statistics.median(values) * 1e6 for name, values in cpu.items()}
    return {
        "in_process_rows_s": rates["in process"],
        "served_c1_rows_s": rates["c=1"],
        "served_c2_rows_s": rates["c=2"],
        "ratio_c1": rates["c=1"] / rates["in process"],
        "ratio_c2": rates["c=2"] / rates["in process"],
        "in_process_cpu_us_row": cpu_us["in process"],
        "served_c1_cpu_us_row": cpu_us["c=1"],
        "served_c2_cpu_us_row": cpu_us["c=2"],
        "cpu_ratio": cpu_us["in process"] / cpu_us["c=1"],
    }


# -- report ----------------------------------------------------------------------------------------


def verdict(value: float, goal: float) -> str:
    return "met" if value >= goal else "NOT met"


def report(inproc: dict, forest: dict, pipe: dict, seconds: float, rounds: int, loads: list[str]) -> str:
    lines = [
        f"## Any scikit-learn model (bench/any_model.py, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC)",
        "",
        f"{side.machine()}; wrk {seconds:g} s per run, median of {rounds} interleaved rounds. "
        f"Load before: {loads[0]}; after: {loads[-1]} (the machine is shared: figures are noisy).",
        "",
        "| measure | mldeploy | reference | ratio | target |",
        "| --- | --- | --- | --- | --- |",
        f"| tutorial forest, one row in process | {inproc['modeler_one_us']:.1f} µs | "
        f"{inproc['sklearn_one_us']:,.0f} µs (its predict_proba) | {inproc['one_ratio']:,.0f}x | "
        f">= 100x: {verdict(inproc['one_ratio'], 100)} |",
        f"| tutorial forest, 10,000 rows in process | {inproc['modeler_batch_ms']:.1f} ms | "
        f"{inproc['sklearn_batch_ms']:.1f} ms | {inproc['batch_ratio']:.1f}x (equal: {inproc['batch_equal']}) | "
        f">= 2x and equal: {verdict(inproc['batch_ratio'] if inproc['batch_equal'] else 0, 2)} |",
        f"| tutorial forest served, /predict c=16 | {forest['mldeploy_rps']:,.0f} req/s | "
        f"{forest['floor_rps']:,.0f} req/s (framework floor) | {forest['ratio']:.2f}x | "
        f">= 0.8x: {verdict(forest['ratio'], 0.8)} |",
        f"| text Pipeline, 1,000-row batch served, c=1 | {pipe['served_c1_rows_s']:,.0f} rows/s | "
        f"{pipe['in_process_rows_s']:,.0f} rows/s (the pipeline in process) | {pipe['ratio_c1']:.2f}x | "
        f">= 0.8x: {verdict(pipe['ratio_c1'], 0.8)} |",
        f"| text Pipeline, 1,000-row batch served, c=2 | {pipe['served_c2_rows_s']:,.0f} rows/s | "
        f"{pipe['in_process_rows_s']:,.0f} rows/s | {pipe['ratio_c2']:.2f}x | (2 workers, 2 cores) |",
        f"| text Pipeline, CPU per row (served c=1: the server's process tree) | "
        f"{pipe['served_c1_cpu_us_row']:.2f} µs | {pipe['in_process_cpu_us_row']:.2f} µs (the pipeline in process) | "
        f"{pipe['cpu_ratio']:.2f}x | (c=2: {pipe['served_c2_cpu_us_row']:.2f} µs) |",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="wrk duration per run")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per served figure")
    parser.add_argument("--no-append", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args(argv)
    side.SECONDS = args.seconds
    loads = [load()]
    forest = tutorial_forest()
    pipeline, sample = churn_pipeline()
    with tempfile.TemporaryDirectory(prefix="mldeploy-any-model-") as tmp:
        work = Path(tmp)
        Modeler(work / "forest").import_model(forest)
        Modeler(work / "pipeline").import_model(pipeline, sample=sample)
        inproc = in_process(forest, work / "forest")
        print(f"in process: {inproc} ({load()})", flush=True)
        served = served_forest(forest, work / "forest", work, args.rounds)
        print(f"served forest: {served} ({load()})", flush=True)
        pipe = served_pipeline(pipeline, work / "pipeline", work, args.rounds, args.seconds)
        print(f"served pipeline: {pipe} ({load()})", flush=True)
    loads.append(load())
    text = report(inproc, served, pipe, args.seconds, args.rounds, loads)
    print(text)
    if not args.no_append:
        with RESULTS.open("a", encoding="utf-8") as out:
            out.write("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
