"""One rule for a feature's value (issue 10.6): typed values (JSON bodies, JSON lines, Parquet)
are numbers only if they are numbers; a CSV cell is text read as a number by one function
(``modeler.cells.text_cells``). HTTP, ``python -m mldeploy predict`` and ``score`` apply it alike."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flask.testing import FlaskClient

from mldeploy.contract import CLASS
from mldeploy.http.app import create_app
from mldeploy.scoring.formats import csv_options
from modeler import cells
from modeler.cells import BOOLEAN, MISSING, NOT_A_NUMBER, NOT_FINITE, PROBLEMS, TOO_LARGE, text_cells, typed_cells
from modeler.data import IRIS_FEATURES
from modeler.json_values import json_safe
from tests.support import SEED_ROW, run_cli

# Text a CSV cell may hold, and what the one rule makes of it (a number, or the problem).
CELL_TEXT = {
    "5": 5.0,
    " 5.1 ": 5.1,
    "\t5.1": 5.1,
    "5e0": 5.0,
    "+5": 5.0,
    "-.5e-3": -0.0005,
    "5.": 5.0,
    "0005": 5.0,
    "1E+3": 1000.0,
    "5,1": NOT_A_NUMBER,
    "1_000": NOT_A_NUMBER,
    "0x10": NOT_A_NUMBER,
    "abc": NOT_A_NUMBER,
    "5 5": NOT_A_NUMBER,
    "nan": NOT_FINITE,
    "-NaN": NOT_FINITE,
    "inf": NOT_FINITE,
    "-Infinity": NOT_FINITE,
    "1e999": NOT_FINITE,
    "1e39": TOO_LARGE,
    "true": BOOLEAN,
    "FALSE": BOOLEAN,
    "": MISSING,
    "  ": MISSING,
}


def outcome(values: np.ndarray, codes: np.ndarray) -> list[object]:
    return [float(v) if c == cells.OK else PROBLEMS[c] for v, c in zip(values, codes, strict=True)]


def test_text_cells_read_numbers_by_one_rule() -> None:
    values, codes = text_cells(pd.Series(list(CELL_TEXT), dtype=object))
    assert outcome(values, codes) == list(CELL_TEXT.values())


@pytest.mark.parametrize("text", list(CELL_TEXT))
def test_the_csv_readers_own_conversion_agrees_with_the_rule(text: str) -> None:
    """A CSV column whose every cell is a number is converted by pandas' reader; any other stays
    text for :func:`text_cells`. Either way a cell means the same: here the odd cell sits among
    plain numbers, and the column reads as the rule reads the cell alone."""
    cell = '"' + text + '"' if text.strip() != text or "," in text else text
    raw = f"x,id\n1.5,a\n{cell},b\n2.5,c\n"
    frame = pd.read_csv(io.StringIO(raw), **csv_options(["x", "id"], ["x"]))
    values, codes = text_cells(frame["x"])
    alone = outcome(*text_cells(pd.Series([text], dtype=object)))
    assert outcome(values, codes) == [1.5, *alone, 2.5]


def test_the_readers_conversion_agrees_on_many_digits() -> None:
    rng = np.random.default_rng(11)
    texts = [repr(float(v)) for v in rng.uniform(-1e4, 1e4, 2000)] + [f"{v:.17e}" for v in rng.uniform(0, 1, 2000)]
    frame = pd.read_csv(io.StringIO("x\n" + "\n".join(texts) + "\n"), **csv_options(["x"], ["x"]))
    assert frame["x"].dtype == np.float64  # the reader converted the column itself
    assert text_cells(frame["x"])[0].tolist() == text_cells(pd.Series(texts, dtype=object))[0].tolist()


def test_typed_values_are_numbers_only_if_they_are() -> None:
    column = pd.Series(["5.1", " 5 ", 5, 5.5, True, None, float("nan"), [1.0], float("inf"), 1e39], dtype=object)
    expected = [NOT_A_NUMBER, NOT_A_NUMBER, 5.0, 5.5, BOOLEAN, MISSING, MISSING, NOT_A_NUMBER, NOT_FINITE, TOO_LARGE]
    assert outcome(*typed_cells(column)) == expected
    assert outcome(*typed_cells(pd.Series(["5.1", None], dtype="str"))) == [NOT_A_NUMBER, MISSING]


# -- the surfaces --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def http(models: Path) -> FlaskClient:
    return create_app({"TESTING": True, "MODEL_DIR": str(models), "WARMUP": False}).test_client()


def test_a_string_is_not_a_number_over_http_on_the_command_line_and_in_json_lines(
    http: FlaskClient, models: Path, tmp_path: Path
) -> None:
    row = {**SEED_ROW, "sepal_width": "5.0"}
    res = http.post("/predict", json=row)
    assert res.status_code == 400
    assert res.get_json()["errors"] == [{"row": 0, "field": "sepal_width", "problem": NOT_A_NUMBER}]
    done = run_cli(models, "predict", json.dumps(row))
    assert done.returncode == 3 and f"'sepal_width': {NOT_A_NUMBER}" in done.stderr
    lines = tmp_path / "rows.jsonl"
    lines.write_text(json.dumps(SEED_ROW) + "\n" + json.dumps(row) + "\n", encoding="utf-8")
    done = run_cli(models, "score", str(lines))
    assert done.returncode == 3, done.stderr
    errors = pd.read_csv(tmp_path / "rows.scored.errors.csv", dtype=str)
    assert errors[["row", "field", "problem", "value"]].values.tolist() == [["1", "sepal_width", NOT_A_NUMBER, "5.0"]]


def test_a_csv_cell_is_text_read_as_a_number(models: Path, tmp_path: Path) -> None:
    source = tmp_path / "rows.csv"
    source.write_text(
        ",".join(IRIS_FEATURES) + "\n" + '" 5.0 ",3.2e0,+1.5,0.3\n' + "5.0,3.2,1.5,0x1\n", encoding="utf-8"
    )
    done = run_cli(models, "score", str(source))
    assert done.returncode == 3, done.stderr
    scored = pd.read_csv(tmp_path / "rows.scored.csv")
    assert scored[list(IRIS_FEATURES)].values.tolist() == [[5.0, 3.2, 1.5, 0.3]]
    assert scored[CLASS].tolist() == ["setosa"]  # the output column is the answer key
    errors = pd.read_csv(tmp_path / "rows.scored.errors.csv", dtype=str)
    assert errors[["row", "field", "problem"]].values.tolist() == [["1", "petal_width", NOT_A_NUMBER]]


def test_json_safe_turns_numpy_and_odd_values_into_json() -> None:
    value = {"a": np.int64(3), 4: (np.float32(0.5), None, True), "b": [np.bool_(True)], "c": object}
    assert json.loads(json.dumps(json_safe(value))) == {"a": 3, "4": [0.5, None, True], "b": [True], "c": repr(object)}
