"""Batch scoring: ``mldeploy.scoring.chunk.score_frame`` in process, and ``python -m mldeploy score`` as a
real process on files (CSV, JSON lines, Parquet), with its errors file, exit codes and progress."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mldeploy.cli.exit_codes import EXIT_ERROR, EXIT_INVALID_INPUT, EXIT_OK, EXIT_USAGE
from mldeploy.cli.main import main
from mldeploy.contract import MODEL_VERSION, WARNINGS
from mldeploy.http.app import create_app
from mldeploy.scoring.chunk import CLASHES, WARNING_SEPARATOR, score_frame
from mldeploy.scoring.formats import csv_options
from modeler import errors
from modeler.batch import ERROR_COLUMNS, load_pinned
from modeler.data import IRIS_FEATURES, iris_frame
from modeler.errors import InvalidInput, ModelIntegrityError
from modeler.modeler import LoadedModel, Modeler
from modeler.validation import TOO_LARGE
from tests.support import REPO, clean_env, run_cli

CLASSES = ["setosa", "versicolor", "virginica"]
# What `score` writes after the input's columns.
OUTPUTS = ["Class", *CLASSES, MODEL_VERSION, WARNINGS]
HEADER = "id,sepal_length,sepal_width,petal_length,petal_width,note\n"
# Rows 1, 2, 4 and 6 are bad; the others are the seed row, a virginica and a versicolor.
ROWS = [
    'A,5.0,3.2,1.5,0.3,"hi, there"',
    "B,,3.2,1.5,0.3,",
    "C,x,3.2,1.5,nan,z",
    "007,6.5,3.0,5.5,2.0,",
    "E,1e999,true,1.5,inf,",
    "F,6.0,2.7,4.2,1.3,last but one",
    "G,5.0,3.2,1.5,1e39,",
]
EXPECTED_ERRORS = [
    (1, "sepal_length", errors.MISSING, ""),
    (2, "sepal_length", errors.NOT_A_NUMBER, "x"),
    (2, "petal_width", errors.NOT_FINITE, "nan"),
    (4, "sepal_length", errors.NOT_FINITE, "1e999"),
    (4, "sepal_width", errors.BOOLEAN, "true"),
    (4, "petal_width", errors.NOT_FINITE, "inf"),
    (6, "petal_width", TOO_LARGE, "1e39"),
]


@pytest.fixture(scope="module")
def model(models: Path) -> LoadedModel:
    return Modeler(models).ensure_ready()


def bad_csv(path: Path) -> Path:
    path.write_text(HEADER + "\n".join(ROWS) + "\n", encoding="utf-8")
    return path


def score(models: Path, *args: str) -> subprocess.CompletedProcess:
    """``python -m mldeploy score *args`` in a real process on the module's models."""
    return run_cli(models, "score", *args)


@pytest.fixture
def score_here(models: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture):
    """``score`` through :func:`mldeploy.cli.main` in this process (no interpreter start-up):
    returns a function giving ``(exit code, stdout, stderr)``."""
    monkeypatch.setenv("MLDEPLOY_MODEL_DIR", str(models))

    def run(*args: str) -> tuple[int, str, str]:
        code = main(["score", *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


def as_text(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


# -- score_frame ------------------------------------------------------------------------------------


def test_good_rows_get_class_and_probabilities_and_keep_extra_columns(model: LoadedModel) -> None:
    columns = HEADER.strip().split(",")
    frame = pd.read_csv(io.StringIO(HEADER + "\n".join(ROWS)), **csv_options(columns, IRIS_FEATURES))
    result = score_frame(model, frame, first_row=10, text=True)
    assert list(result.scored.columns) == [*frame.columns, *OUTPUTS]
    assert result.scored["id"].tolist() == ["A", "007", "F"]
    assert result.scored["note"].tolist()[0] == "hi, there"
    assert result.scored["Class"].tolist() == ["setosa", "virginica", "versicolor"]
    features = result.scored[list(IRIS_FEATURES)]
    np.testing.assert_array_equal(result.scored[CLASSES].to_numpy(), model.estimator.predict_proba(features))
    assert (result.rows, result.failed_rows) == (7, 4)
    assert list(result.errors.columns) == list(ERROR_COLUMNS)
    assert [tuple(r) for r in result.errors.itertuples(index=False)] == [
        (row + 10, field, problem, value) for row, field, problem, value in EXPECTED_ERRORS
    ]


def test_scores_equal_sklearn_on_iris(model: LoadedModel) -> None:
    frame = iris_frame().drop(columns="species")
    result = score_frame(model, frame, text=False)
    assert result.failed_rows == 0
    assert result.scored["Class"].tolist() == model.estimator.predict(frame).tolist()


@pytest.mark.parametrize(
    ("column", "problem"),
    [
        (pd.Series([True, False]), errors.BOOLEAN),
        (pd.Series([None, 1.0], dtype=object), errors.MISSING),
        (pd.Series(["  ", "5"], dtype=object), errors.MISSING),
        (pd.Series([[1.0], 1.0], dtype=object), errors.NOT_A_NUMBER),
        (pd.Series([False, 1.0], dtype=object), errors.BOOLEAN),
        (pd.Series([-np.inf, 1.0]), errors.NOT_FINITE),
        (pd.Series(["NaN", "1"], dtype="str"), errors.NOT_FINITE),
    ],
    ids=["bool-column", "none", "blank", "list", "bool-object", "minus-inf", "nan-text"],
)
def test_each_kind_of_bad_value_is_named(model: LoadedModel, column: pd.Series, problem: str) -> None:
    frame = pd.DataFrame({f: [5.0, 5.0] for f in IRIS_FEATURES})
    frame["petal_width"] = column
    result = score_frame(model, frame, text=True)
    assert result.errors[["row", "field", "problem"]].values.tolist()[0] == [0, "petal_width", problem]


def test_text_that_reads_as_a_number_is_a_number(model: LoadedModel) -> None:
    frame = pd.DataFrame({f: [" 5.0 ", "5e0", "+5"] for f in IRIS_FEATURES}, dtype="str")
    result = score_frame(model, frame, text=True)
    assert result.failed_rows == 0
    assert result.scored[list(IRIS_FEATURES)].to_numpy().tolist() == [[5.0] * 4] * 3


def test_missing_feature_column_and_clashing_column_refuse_the_whole_input(model: LoadedModel) -> None:
    frame = pd.DataFrame({"sepal_length": [5.0], "sepal_width": [3.2], "petal_length": [1.5], "setosa": [1]})
    with pytest.raises(InvalidInput) as caught:
        score_frame(model, frame, text=True)
    found = {(e.field, e.problem) for e in caught.value.errors}
    assert found == {("petal_width", errors.MISSING), ("setosa", CLASHES)}


def test_each_row_gets_its_model_version_and_the_fields_out_of_range_as_predict_says(
    models: Path, model: LoadedModel
) -> None:
    low, high = (np.array(bounds) for bounds in zip(*model.ranges, strict=True))
    rows = np.array([[5.0, 3.2, 1.5, 0.3], low, high, low - 0.1, [5.0, 3.2, 25.0, 0.3], [5.0, 9.0, -1.0, 0.3]])
    frame = pd.DataFrame(rows, columns=list(IRIS_FEATURES)).assign(id=range(len(rows)))
    scored = score_frame(model, frame, text=False).scored
    assert list(scored.columns) == [*IRIS_FEATURES, "id", *OUTPUTS]
    assert scored[MODEL_VERSION].tolist() == [model.version] * len(rows)
    # POST /predict on the same rows: its Warnings name the same fields, in the same order.
    client = create_app({"MODEL_DIR": str(models), "WARMUP": False}).test_client()
    answers = client.post("/predict", json=frame[list(IRIS_FEATURES)].to_dict(orient="records")).get_json()
    assert answers[MODEL_VERSION] == model.version
    expected = [WARNING_SEPARATOR.join(w["field"] for w in p.get(WARNINGS, [])) for p in answers["Predictions"]]
    assert expected == ["", "", "", WARNING_SEPARATOR.join(IRIS_FEATURES), "petal_length", "sepal_width;petal_length"]
    assert scored[WARNINGS].tolist() == expected


@pytest.mark.parametrize("column", [MODEL_VERSION, WARNINGS])
def test_an_input_column_named_like_an_added_output_is_refused(model: LoadedModel, column: str) -> None:
    frame = pd.DataFrame({f: [5.0] for f in IRIS_FEATURES}).assign(**{column: ["mine"]})
    with pytest.raises(InvalidInput) as caught:
        score_frame(model, frame, text=False)
    assert [(e.field, e.problem) for e in caught.value.errors] == [(column, CLASHES)]


def test_an_empty_chunk_gives_the_output_columns(model: LoadedModel) -> None:
    result = score_frame(model, pd.DataFrame({f: pd.Series(dtype=float) for f in IRIS_FEATURES}), text=False)
    assert list(result.scored.columns) == [*IRIS_FEATURES, *OUTPUTS]
    assert (result.rows, result.failed_rows, len(result.errors)) == (0, 0, 0)


def test_a_pinned_model_with_another_hash_is_refused(model: LoadedModel, models: Path) -> None:
    assert load_pinned(str(models), model.version, model.sha256).version == model.version
    with pytest.raises(ModelIntegrityError, match="another model file"):
        load_pinned(str(models), model.version, "0" * 64)


# -- python -m mldeploy score ---------------------------------------------------------------------


def test_bad_rows_go_to_the_errors_file_and_the_exit_code_says_so(models: Path, tmp_path: Path) -> None:
    source = bad_csv(tmp_path / "flowers.csv")
    run = score(models, str(source))
    assert run.returncode == EXIT_INVALID_INPUT, run.stderr
    output, errors_file = tmp_path / "flowers.scored.csv", tmp_path / "flowers.scored.errors.csv"
    assert "scored 3 of 7 rows in" in run.stdout and f"4 rows failed -> {errors_file}" in run.stdout
    scored = as_text(output)
    assert list(scored.columns) == [*HEADER.strip().split(","), *OUTPUTS]
    assert set(scored[MODEL_VERSION]) == {Modeler(models).ensure_ready().version}
    assert scored[WARNINGS].tolist() == ["", "", ""]  # every good row is within the training ranges
    # Extra columns come back as the exact text they were ("007" stays "007", quotes survive).
    assert scored[["id", "note", "Class"]].values.tolist() == [
        ["A", "hi, there", "setosa"],
        ["007", "", "virginica"],
        ["F", "last but one", "versicolor"],
    ]
    assert [tuple(r) for r in as_text(errors_file).itertuples(index=False)] == [
        (str(row), field, problem, value) for row, field, problem, value in EXPECTED_ERRORS
    ]

    again = score(models, str(source), "--allow-errors", "--chunk-rows", "2")
    assert again.returncode == EXIT_OK, again.stderr
    # Chunks of two rows give the same files: row numbers count from the file's first row.
    pd.testing.assert_frame_equal(as_text(output), scored)
    assert len(as_text(errors_file)) == len(EXPECTED_ERRORS)


def test_a_clean_run_exits_0_and_removes_a_stale_errors_file(score_here, model: LoadedModel, tmp_path: Path) -> None:
    source = tmp_path / "clean.csv"
    flowers = iris_frame().drop(columns="species")
    flowers.to_csv(source, index=False)
    stale = tmp_path / "out.errors.csv"
    stale.write_text("row,field,problem,value\n", encoding="utf-8")
    code, out, err = score_here(str(source), "-o", str(tmp_path / "out.csv"))
    assert code == EXIT_OK, err
    assert "scored 150 of 150 rows" in out and "failed" not in out
    assert not stale.exists()
    assert as_text(tmp_path / "out.csv")["Class"].tolist() == model.estimator.predict(flowers).tolist()


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_other_formats_round_trip_to_the_same_scores(score_here, tmp_path: Path, fmt: str) -> None:
    source = bad_csv(tmp_path / "flowers.csv")
    assert score_here(str(source), "--allow-errors")[0] == EXIT_OK
    expected = pd.read_csv(tmp_path / "flowers.scored.csv", dtype={"id": str, "note": str}, keep_default_na=False)

    code, _, err = score_here(str(source), "--allow-errors", "--format", fmt, "-o", str(tmp_path / f"out.{fmt}"))
    assert code == EXIT_OK, err
    read = pd.read_parquet if fmt == "parquet" else lambda p: pd.read_json(p, lines=True, dtype=False)
    out = read(tmp_path / f"out.{fmt}")
    pd.testing.assert_frame_equal(out, expected, check_dtype=False)

    # ... and the converted file scores again (as input) to the same classes.
    back, inputs = tmp_path / f"back.{fmt}", out.drop(columns=OUTPUTS)
    if fmt == "parquet":
        inputs.to_parquet(back)
    else:
        inputs.to_json(back, orient="records", lines=True)
    code, _, err = score_here(str(back), "-o", str(tmp_path / "rescored.csv"))
    assert code == EXIT_OK, err
    assert as_text(tmp_path / "rescored.csv")["Class"].tolist() == expected["Class"].tolist()


def test_json_lines_with_nulls_strings_and_booleans(score_here, tmp_path: Path) -> None:
    source = tmp_path / "rows.jsonl"
    source.write_text(
        '{"id": 1, "sepal_length": 5.0, "sepal_width": 3.2, "petal_length": 1.5, "petal_width": 0.3}\n'
        '{"id": 2, "sepal_length": null, "sepal_width": "wide", "petal_length": true, "petal_width": 0.3}\n',
        encoding="utf-8",
    )
    assert score_here(str(source))[0] == EXIT_INVALID_INPUT
    problems = as_text(tmp_path / "rows.scored.errors.csv")[["row", "field", "problem"]].values.tolist()
    assert problems == [
        ["1", "sepal_length", errors.MISSING],
        ["1", "sepal_width", errors.NOT_A_NUMBER],
        ["1", "petal_length", errors.BOOLEAN],
    ]
    assert pd.read_json(tmp_path / "rows.scored.jsonl", lines=True)["Class"].tolist() == ["setosa"]


def test_input_problems_are_clear_messages(score_here, tmp_path: Path) -> None:
    no_feature = tmp_path / "short.csv"
    no_feature.write_text("sepal_length,sepal_width\n5.0,3.2\n", encoding="utf-8")
    code, _, err = score_here(str(no_feature))
    assert code == EXIT_INVALID_INPUT
    assert "'petal_length': missing" in err
    assert not (tmp_path / "short.scored.csv").exists()  # no half-written output either

    unknown = tmp_path / "data.xlsx"
    unknown.write_text("x", encoding="utf-8")
    code, _, err = score_here(str(unknown))
    assert code == EXIT_USAGE and "cannot tell the format" in err

    code, _, err = score_here(str(tmp_path / "absent.csv"))
    assert code == EXIT_ERROR and "no such input file" in err

    # `--dask FILE` with no INPUT: the file is the input (argparse cannot tell them apart).
    assert score_here("--dask", str(tmp_path / "absent.csv"))[0] == EXIT_USAGE


def test_missing_pyarrow_is_a_clear_message(models: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    (blocker / "pyarrow").mkdir(parents=True)
    (blocker / "pyarrow" / "__init__.py").write_text("raise ImportError('pyarrow is blocked in this test')\n")
    source = bad_csv(tmp_path / "flowers.csv")
    run = subprocess.run(
        [sys.executable, "-m", "mldeploy", "score", str(source), "--format", "parquet"],
        cwd=REPO,
        env=clean_env(MLDEPLOY_MODEL_DIR=str(models), PYTHONPATH=str(blocker)),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == EXIT_ERROR
    assert "pip install -r requirements-parquet.txt" in run.stderr and "Traceback" not in run.stderr


def test_progress_is_plain_lines_off_a_terminal(models: Path, tmp_path: Path) -> None:
    source = tmp_path / "clean.csv"
    iris_frame().drop(columns="species").to_csv(source, index=False)
    run = score(models, str(source), "--chunk-rows", "50")
    [line] = run.stderr.splitlines()  # a run this short prints only the closing line
    assert line.startswith("scoring: 150 rows, ") and line.endswith(" rows/s, 0 failed")
    assert "\r" not in run.stderr


def test_progress_is_a_bar_on_a_terminal(models: Path, tmp_path: Path) -> None:
    source = tmp_path / "clean.csv"
    iris_frame().drop(columns="species").to_csv(source, index=False)
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal has a size
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mldeploy", "score", str(source)],
            cwd=REPO,
            env=clean_env(MLDEPLOY_MODEL_DIR=str(models)),
            stdout=subprocess.PIPE,
            stderr=follower,
        )
        os.close(follower)
        seen = b""
        while True:
            try:
                data = os.read(leader, 4096)
            except OSError:  # the terminal closes when the process ends
                break
            if not data:
                break
            seen += data
        assert proc.wait(timeout=300) == EXIT_OK
        proc.stdout.close()
    finally:
        os.close(leader)
    bar = seen.decode("utf-8", "replace")
    assert "\r" in bar and "scoring: " in bar and "150 rows" in bar and "rows/s" in bar and "failed=0" in bar


# -- in-process batches -------------------------------------------------------------------------


def test_batch_predictions_equal_sklearn_on_every_threshold_edge(models: Path, model: LoadedModel) -> None:
    """``predict``/``predict_proba`` on a DataFrame, a 2-D array and a list of rows (sklearn's
    compiled walk) against sklearn itself, on values at, just under and just over each split."""
    tree = model.estimator.tree_
    rng = np.random.default_rng(7)
    base = rng.uniform(0, 8, size=(2000, 4))
    edges = []
    for feature, threshold in zip(tree.feature, tree.threshold, strict=True):
        if feature < 0:
            continue
        t32 = np.float32(threshold)
        for value in (threshold, t32, np.nextafter(t32, np.float32(-np.inf)), np.nextafter(t32, np.float32(np.inf))):
            row = base[len(edges) % len(base)].copy()
            row[feature] = float(value)
            edges.append(row)
    frame = pd.DataFrame(np.vstack([base, edges]), columns=list(IRIS_FEATURES))
    modeler = Modeler(models)
    expected = model.estimator.predict(frame).tolist()
    assert modeler.predict(frame) == expected
    assert modeler.predict(frame.to_numpy()) == expected
    assert modeler.predict(frame.to_numpy().tolist()) == expected
    proba = modeler.predict_proba(frame)
    np.testing.assert_array_equal(proba.to_numpy(), model.estimator.predict_proba(frame))
    assert list(proba.index) == list(frame.index)
    assert modeler.infer(frame).labels == expected  # the request path agrees with the batch path
