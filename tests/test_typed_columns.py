"""Typed validation column at a time gives what the row-by-row path gives, on thousands of rows.

For every batch form (records, lists in field order, ``columns``/``data`` in another order, a
DataFrame, a 2-D array) of a schema with every field type, nullable and not, the column path
(:mod:`modeler.typed_columns`) must give the same rows (the same Python types), the same
warnings (unseen categories, numbers out of range, in the same order), the same DataFrame for
the model and so the same answers; and a bad cell in a middle row must give the same 400 as the
row path, naming that row, its field and the problem. The row path is what
``to_typed_rows`` does when no column check passes: the ``row_path`` fixture makes it so.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

import modeler.typed_validation as typed_validation
from mldeploy.api.answers import predict_answer
from mldeploy.contract import CLASS, PROBABILITIES
from mldeploy.monitoring.packing import pack_inputs, unpack_inputs
from modeler.cells import BOOLEAN as BOOLEAN_PROBLEM
from modeler.cells import INTEGER_TOO_LARGE, MISSING, NOT_A_NUMBER, NOT_FINITE, NULL, TOO_LARGE, UNKNOWN
from modeler.errors import InvalidInput
from modeler.modeler import Modeler
from modeler.predictors.general import CLASSIFICATION, GeneralPredictor
from modeler.schema import BOOLEAN, INTEGER, NUMBER, TEXT, Field, Schema
from modeler.typed_columns import TypedColumns
from modeler.typed_validation import NOT_A_BOOLEAN, NOT_AN_INTEGER, NOT_TEXT, to_typed_rows, unusual_values
from modeler.validation import Columns
from tests.test_serving_any_model import app_on, as_json_rows, churn_pipeline, customers

N = 3000
MIDDLE = 1234  # the row a bad value goes in

SCHEMA = Schema(
    (
        Field("city", TEXT, categories=("lyon", "nice", "paris")),
        Field("note", TEXT, nullable=True, categories=("a", "b")),
        Field("age", INTEGER, min=18.0, max=80.0),
        Field("visits", INTEGER, nullable=True, min=0.0, max=10.0),
        Field("income", NUMBER, min=0.0, max=60_000.0),
        Field("score", NUMBER, nullable=True, min=-1.0, max=1.0),
        Field("member", BOOLEAN, categories=(False, True)),
        Field("vip", BOOLEAN, nullable=True, categories=(False,)),
    )
)
NAMES = list(SCHEMA.names)


def records(n: int = N, seed: int = 0) -> list[dict]:
    """Rows as JSON gives them: nulls where taken, unseen categories, numbers out of range,
    integers sent as whole floats and numbers as ints."""
    rng = random.Random(seed)

    def maybe(value: object) -> object:
        return None if rng.random() < 0.1 else value

    rows = []
    for _ in range(n):
        rows.append(
            {
                "city": rng.choice(["lyon", "nice", "paris", "paris", "brest"]),
                "note": maybe(rng.choice(["a", "b", "c"])),
                "age": rng.choice([rng.randint(10, 90), float(rng.randint(18, 80))]),
                "visits": maybe(rng.randint(0, 12)),
                "income": rng.choice([rng.uniform(-100.0, 70_000.0), rng.randint(0, 60_000)]),
                "score": maybe(rng.uniform(-1.2, 1.2)),
                "member": rng.random() < 0.5,
                "vip": maybe(rng.random() < 0.3),
            }
        )
    return rows


def forms(rows: list[dict]) -> dict[str, object]:
    """The same rows in every batch form ``to_typed_rows`` takes."""
    lists = [[row[f] for f in NAMES] for row in rows]
    shuffled = NAMES[::-1]
    return {
        "records": rows,
        "lists": lists,
        "columns": Columns(shuffled, [[row[f] for f in shuffled] for row in rows]),
        "frame": pd.DataFrame(rows, columns=NAMES),
        "array": np.array(lists, dtype=object),
    }


@pytest.fixture
def row_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation row by row only: no batch passes the column check."""
    monkeypatch.setattr(typed_validation, "typed_columns", lambda columns, schema: None)


def typed(rows: object) -> list[list[tuple[str, object]]]:
    """Rows with each value's type: 1, 1.0 and True are equal in Python, not here."""
    return [[(type(v).__name__, v) for v in row] for row in rows]


def warnings_of(found: dict[int, list]) -> list[tuple[int, list[dict]]]:
    return [(row, [w.as_dict() for w in ws]) for row, ws in found.items()]


def predictor(schema: Schema = SCHEMA) -> GeneralPredictor:
    return GeneralPredictor(schema, CLASSIFICATION, ("no", "yes"), True, lambda: None)


def assert_same_frame(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    for name in expected.columns:  # None and NaN, True and np.True_ are alike to assert_frame_equal
        assert got[name].map(type).tolist() == expected[name].map(type).tolist(), name


def row_path_result(x: object, monkeypatch: pytest.MonkeyPatch, schema: Schema = SCHEMA) -> object:
    with monkeypatch.context() as patch:
        patch.setattr(typed_validation, "typed_columns", lambda columns, schema: None)
        rows, single = to_typed_rows(x, schema)
    assert isinstance(rows, list) and not single
    return rows


@pytest.mark.parametrize("form", ["records", "lists", "columns", "frame", "array"])
def test_every_batch_form_gives_the_row_paths_rows_warnings_and_frame(form: str, monkeypatch) -> None:
    x = forms(records())[form]
    expected = row_path_result(x, monkeypatch)
    got, single = to_typed_rows(x, SCHEMA)
    assert isinstance(got, TypedColumns) and not single and len(got) == N
    assert typed(got.tolist()) == typed(expected)
    assert typed(got) == typed(expected) and got[MIDDLE] == expected[MIDDLE]
    found = unusual_values(got, SCHEMA)
    assert warnings_of(found) == warnings_of(unusual_values(expected, SCHEMA))
    assert {w.field for ws in found.values() for w in ws} == {"city", "note", "age", "visits", "income", "score", "vip"}
    assert_same_frame(predictor()._input(got), predictor()._input(expected))
    assert unpack_inputs(pack_inputs(NAMES, got)) == unpack_inputs(pack_inputs(NAMES, expected))


def test_a_frame_with_missing_values_as_nan_and_integers_as_floats(monkeypatch) -> None:
    """A DataFrame of JSON-like rows has NaN for None in its float columns and None or NaN in its
    object columns: both are a missing value, as on the row path."""
    frame = pd.DataFrame(records(), columns=NAMES)
    frame["note"] = frame["note"].astype("str")  # pandas' string dtype: NaN for a missing text
    assert frame["visits"].dtype == np.float64 and frame["visits"].isna().any()
    got, _ = to_typed_rows(frame, SCHEMA)
    assert isinstance(got, TypedColumns)
    assert typed(got) == typed(row_path_result(frame, monkeypatch))


def test_rare_values_take_the_row_path_and_give_its_answer(monkeypatch) -> None:
    """Values the column check does not take (an integer beyond 2**53, a str subclass, numpy
    scalars, pandas' NA) are not errors: the row path takes the batch and converts them."""
    rows = records(200)
    rows[7]["visits"] = 2**60 + 1
    rows[8]["city"] = np.str_("nice")
    rows[9]["income"] = np.float64(12.5)
    rows[10]["member"] = np.True_
    frame = pd.DataFrame(records(200), columns=NAMES).astype({"visits": "Int64"})  # pd.NA for a null
    assert frame["visits"].isna().any()
    for x in (rows, frame):
        got, _ = to_typed_rows(x, SCHEMA)
        assert isinstance(got, list)
        assert typed(got) == typed(row_path_result(x, monkeypatch))
    got, _ = to_typed_rows(rows, SCHEMA)
    assert got[7][3] == 2**60 + 1 and got[8][0] == "nice" and got[10][6] is True


def test_big_integers_and_numbers_convert_as_on_the_row_path(monkeypatch) -> None:
    rng = np.random.default_rng(3)
    rows = records()
    for i, row in enumerate(rows):
        row["income"] = int(rng.integers(-(2**62), 2**62)) * (3**i % 7)  # exact ints beyond float64's precision
        row["age"] = int(rng.integers(-(2**53) + 1, 2**53))
    got, _ = to_typed_rows(rows, SCHEMA)
    assert isinstance(got, TypedColumns)
    assert typed(got) == typed(row_path_result(rows, monkeypatch))
    # From 2**53 on, an int is kept exactly as sent (the row path's), within int64's range only.
    for value in (2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, -(2**63)):
        rows[MIDDLE]["age"] = value
        got, _ = to_typed_rows(rows, SCHEMA)
        assert got[MIDDLE][2] == value and type(got[MIDDLE][2]) is int
    rows[MIDDLE]["age"] = 2**63
    assert errors_of(rows) == ("Invalid input", [(MIDDLE, "age", INTEGER_TOO_LARGE)])


BAD_CELLS = [
    ("city", 3, NOT_TEXT),
    ("city", None, NULL),
    ("note", 5, NOT_TEXT),
    ("age", 40.5, NOT_AN_INTEGER),
    ("age", True, BOOLEAN_PROBLEM),
    ("age", "40", NOT_A_NUMBER),
    ("age", None, NULL),
    ("visits", 1.5, NOT_AN_INTEGER),
    ("visits", -(2**64), INTEGER_TOO_LARGE),
    ("age", 1e19, INTEGER_TOO_LARGE),
    ("age", -(2.0**63), INTEGER_TOO_LARGE),  # what the JSON reader makes of -2**63 - 1
    ("income", "lots", NOT_A_NUMBER),
    ("income", None, NULL),
    ("income", 1e39, TOO_LARGE),
    ("income", 10**400, TOO_LARGE),
    ("income", float("inf"), NOT_FINITE),
    ("income", float("nan"), NULL),
    ("score", True, BOOLEAN_PROBLEM),
    ("score", float("-inf"), NOT_FINITE),
    ("member", 1, NOT_A_BOOLEAN),
    ("member", "true", NOT_A_BOOLEAN),
    ("member", None, NULL),
    ("vip", 0, NOT_A_BOOLEAN),
]


def errors_of(x: object, schema: Schema = SCHEMA) -> tuple[str, list[tuple]]:
    with pytest.raises(InvalidInput) as caught:
        to_typed_rows(x, schema)
    return caught.value.message, [(e.row, e.field, e.problem) for e in caught.value.errors]


@pytest.mark.parametrize(("field", "value", "problem"), BAD_CELLS)
def test_a_bad_cell_in_a_middle_row_is_named_as_on_the_row_path(field, value, problem, monkeypatch) -> None:
    rows = records()
    rows[MIDDLE] = {**rows[MIDDLE], field: value}
    for form, x in forms(rows).items():
        got = errors_of(x)
        with monkeypatch.context() as patch:
            patch.setattr(typed_validation, "typed_columns", lambda columns, schema: None)
            assert got == errors_of(x), form
        assert got == ("Invalid input", [(MIDDLE, field, problem)]), form


def test_missing_unknown_and_short_rows_and_many_problems_as_on_the_row_path(monkeypatch) -> None:
    rows = records()
    rows[MIDDLE] = {k: v for k, v in rows[MIDDLE].items() if k != "age"} | {"agee": 40}
    rows[MIDDLE + 1] = {k: v for k, v in rows[MIDDLE + 1].items() if k != "vip"}
    lists = [[row.get(f) for f in NAMES] for row in records()]
    lists[MIDDLE] = lists[MIDDLE][:-1]
    many = records()
    for row in many[:150]:
        row["city"] = 1
    for x in (rows, lists, many, Columns(NAMES, lists)):
        got = errors_of(x)
        with monkeypatch.context() as patch:
            patch.setattr(typed_validation, "typed_columns", lambda columns, schema: None)
            assert got == errors_of(x)
    assert errors_of(rows)[1] == [
        (MIDDLE, "age", MISSING),
        (MIDDLE, "age", NULL),  # as the row path has always said it of a missing non-nullable field
        (MIDDLE, "agee", UNKNOWN),
        (MIDDLE + 1, "vip", MISSING),
    ]
    assert errors_of(many)[0] == "Invalid input (101 problems, the first 100 listed)"


@pytest.mark.parametrize("n_classes", [2, 3])
def test_a_batch_answer_is_each_rows_label_and_probability_dict(n_classes: int, tmp_path: Path) -> None:
    """The batch answer, built from the probability columns, holds what the answers' own
    ``labels`` and ``probability_dicts`` say for each row."""
    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 3))
    y = np.array(["a", "b", "c"][:n_classes])[rng.integers(0, n_classes, 300)]
    modeler = Modeler(tmp_path / "models").import_model(LogisticRegression().fit(X, y))
    result = modeler.infer(rng.standard_normal((N, 3)))
    answers = result.answers
    body = predict_answer(result, serialised=True, warnings={})
    expected = [
        {CLASS: label, PROBABILITIES: p} for label, p in zip(answers.labels(), answers.probability_dicts(), strict=True)
    ]
    assert body["Predictions"] == expected


# -- served: /predict answers and refuses as on the row path ------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory):
    model, frame = churn_pipeline()
    path = tmp_path_factory.mktemp("pipeline")
    Modeler(path).import_model(model, sample=frame)
    return app_on(path), model


def test_served_batches_answer_byte_for_byte_as_on_the_row_path(served, monkeypatch) -> None:
    client, model = served
    frame = customers(N, 5)
    frame.loc[frame.index % 97 == 3, "plan"] = "gold"  # unseen: a warning on those rows
    rows = as_json_rows(frame)
    bodies = {
        "records": rows,
        "instances": {"instances": rows},
        "columns": {
            "columns": ["tenure_months", "plan", "monthly_spend"],
            "data": [[r["tenure_months"], r["plan"], r["monthly_spend"]] for r in rows],
        },
    }
    real, taken = typed_validation.typed_columns, []
    monkeypatch.setattr(typed_validation, "typed_columns", lambda c, schema: taken.append(real(c, schema)) or taken[-1])
    for form, body in bodies.items():
        got = client.post("/predict", json=body)
        assert isinstance(taken[-1], TypedColumns), form  # the column path answered
        with monkeypatch.context() as patch:
            patch.setattr(typed_validation, "typed_columns", lambda columns, schema: None)
            expected = client.post("/predict", json=body)
        assert got.status_code == expected.status_code == 200, form
        answer, expected_answer = json.loads(got.data), json.loads(expected.data)
        answer.pop("ModelVersion"), expected_answer.pop("ModelVersion")
        assert answer == expected_answer, form
        assert [p[CLASS] for p in answer["Predictions"]] == model.predict(frame).tolist()
        unseen = [any(w["field"] == "plan" for w in p.get("Warnings", [])) for p in answer["Predictions"]]
        assert unseen == (frame["plan"] == "gold").tolist()

    rows[MIDDLE] = {**rows[MIDDLE], "tenure_months": 2.5}
    rows[MIDDLE + 1] = {**rows[MIDDLE + 1], "plan": None}
    bad = client.post("/predict", json=rows)
    with monkeypatch.context() as patch:
        patch.setattr(typed_validation, "typed_columns", lambda columns, schema: None)
        expected_bad = client.post("/predict", json=rows)
    assert bad.status_code == expected_bad.status_code == 400
    assert bad.get_json() == expected_bad.get_json()
    assert [(e["row"], e["field"], e["problem"]) for e in bad.get_json()["errors"]] == [
        (MIDDLE, "tenure_months", NOT_AN_INTEGER),
        (MIDDLE + 1, "plan", NULL),
    ]
