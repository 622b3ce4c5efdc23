"""A batch of named records is read from the body's bytes straight into floats for the model's
fields (mldeploy/api/records.py), and answers exactly as the general reader's parse would: the
same answers for valid batches, and anything the typed reader does not take (a bad value, a
missing or unknown field, another shape) is parsed and reported by the general reader."""

from __future__ import annotations

import json

import numpy as np
import orjson
import pytest
from flask.testing import FlaskClient

from mldeploy.api import resources
from mldeploy.api.records import decode_records
from modeler.cells import BOOLEAN, MISSING, NOT_A_NUMBER, NULL, TOO_LARGE, UNKNOWN
from modeler.validation import DecodedRecords
from tests.support import SEED_ROW

FEATURES = list(SEED_ROW)
MAX_ROWS = 10_000


def records(n: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    values = rng.uniform([4.3, 2.0, 1.0, 0.1], [7.9, 4.4, 6.9, 2.5], size=(n, 4)).round(2)
    return [dict(zip(FEATURES, row, strict=True)) for row in values.tolist()]


def never() -> object:
    raise AssertionError("the general reader was asked")


def decoded(raw: bytes, features: list[str] = FEATURES, max_rows: int = MAX_ROWS) -> DecodedRecords | None:
    return decode_records(raw, lambda: features, max_rows, never)


def post(client: FlaskClient, raw: bytes):
    return client.post("/predict", data=raw, content_type="application/json")


@pytest.mark.parametrize(
    "raw",
    [
        orjson.dumps(records(500)),
        orjson.dumps({"instances": records(500)}),
        b" \n\t" + orjson.dumps(records(500)),  # leading whitespace
        json.dumps(records(500), indent=2).encode(),
    ],
    ids=["list", "instances", "whitespace", "indented"],
)
def test_a_batch_of_records_is_decoded_into_the_models_field_order(raw: bytes) -> None:
    found = decoded(raw)
    assert found is not None
    expected = np.array([[r[f] for f in FEATURES] for r in records(500)])
    assert found.names == tuple(FEATURES)
    assert found.array.dtype == np.float64
    assert np.array_equal(found.array, expected)


def test_keys_in_any_order_integers_and_names_that_are_not_identifiers() -> None:
    names = ["sepal length (cm)", "class", "x-1"]
    raw = b'[{"x-1": 3, "class": 2.5, "sepal length (cm)": 1}, {"class": 0, "x-1": -1e-3, "sepal length (cm)": 7}]'
    found = decoded(raw, names)
    assert found is not None
    assert found.array.tolist() == [[1.0, 2.5, 3.0], [7.0, 0.0, -0.001]]
    one = decoded(b'[{"only": 1}, {"only": 2.5}]', ["only"])
    assert one is not None and one.array.tolist() == [[1.0], [2.5]]


@pytest.mark.parametrize(
    "raw",
    [
        orjson.dumps(SEED_ROW),  # a single row: already fast
        orjson.dumps({"features": list(SEED_ROW.values())}),
        orjson.dumps({"columns": FEATURES, "data": [list(SEED_ROW.values())]}),
        orjson.dumps([list(SEED_ROW.values())]),  # rows as lists
        b"[]",
        orjson.dumps([{**SEED_ROW, "sepal_width": True}]),
        orjson.dumps([{**SEED_ROW, "sepal_width": "3.2"}]),
        orjson.dumps([{**SEED_ROW, "sepal_width": None}]),
        orjson.dumps([{k: v for k, v in SEED_ROW.items() if k != "petal_width"}]),
        orjson.dumps([{**SEED_ROW, "colour": 1}]),
        orjson.dumps({"instances": [SEED_ROW], "extra": 1}),
        b'[{"sepal_length": 1e400, "sepal_width": 1, "petal_length": 1, "petal_width": 1}]',
        b"[{" + b"oops",
        b"not json",
    ],
    ids=[
        "single-row",
        "features",
        "columns",
        "lists",
        "empty",
        "bool",
        "string",
        "null",
        "missing",
        "unknown",
        "instances-extra",
        "overflow",
        "malformed",
        "not-json",
    ],
)
def test_what_the_typed_reader_does_not_take_is_left_to_the_general_reader(raw: bytes) -> None:
    assert decoded(raw) is None


def test_a_batch_over_the_row_limit_is_left_to_the_general_reader() -> None:
    raw = orjson.dumps(records(11))
    assert decoded(raw, max_rows=10) is None
    assert decoded(raw, max_rows=11) is not None


def test_no_fields_to_decode_for_means_the_general_reader() -> None:
    assert decode_records(orjson.dumps(records(3)), lambda: None, MAX_ROWS, never) is None


def test_a_model_with_other_fields_or_types_gets_the_body_as_the_general_reader_parses_it() -> None:
    parsed = object()
    found = decode_records(orjson.dumps(records(3)), lambda: FEATURES, MAX_ROWS, lambda: parsed)
    assert found is not None
    assert found.for_model(FEATURES, numeric_only=True) is found.array
    assert found.for_model([*FEATURES[1:], FEATURES[0]], numeric_only=True) is parsed  # another order
    assert found.for_model(FEATURES[:3], numeric_only=True) is parsed
    assert found.for_model(FEATURES, numeric_only=False) is parsed  # e.g. a field that may be null
    # A value beyond float32's range is named by the general reader, as it always was.
    big = decode_records(orjson.dumps([{**SEED_ROW, "petal_width": 1e300}]), lambda: FEATURES, MAX_ROWS, lambda: parsed)
    assert big is not None and big.for_model(FEATURES, numeric_only=True) is parsed


def test_served_records_skip_the_general_reader_and_answer_as_the_other_batch_forms(client, monkeypatch) -> None:
    assert post(client, orjson.dumps(SEED_ROW)).status_code == 200  # the model is loaded (trained) now
    calls = []
    general = resources.parse_json
    monkeypatch.setattr(resources, "parse_json", lambda raw: calls.append(len(raw)) or general(raw))
    rows = records(3000, seed=1)
    answer = post(client, orjson.dumps(rows))
    assert answer.status_code == 200
    assert calls == []  # the typed reader took it (a model not loaded yet: the general reader)
    as_instances = post(client, orjson.dumps({"instances": rows}))
    assert calls == []
    # The column-wise form always went through the general reader: the same answers.
    columns = post(client, orjson.dumps({"columns": FEATURES, "data": [[r[f] for f in FEATURES] for r in rows]}))
    assert calls
    predictions = answer.get_json()["Predictions"]
    assert len(predictions) == 3000
    assert predictions == as_instances.get_json()["Predictions"] == columns.get_json()["Predictions"]
    # And the same answers as row by row.
    for row, predicted in zip(rows[:20], predictions, strict=False):
        single = post(client, orjson.dumps(row)).get_json()
        assert (single["Class"], single["Probabilities"]) == (predicted["Class"], predicted["Probabilities"])


@pytest.mark.parametrize(
    ("bad", "field", "problem"),
    [
        (True, "sepal_width", BOOLEAN),
        ("3.2", "sepal_width", NOT_A_NUMBER),
        (None, "sepal_width", NULL),
        (1e300, "sepal_width", TOO_LARGE),
    ],
)
def test_a_bad_value_in_a_records_batch_is_named_by_row_and_field(client, bad, field, problem) -> None:
    rows = records(50, seed=2)
    rows[17][field] = bad
    res = post(client, orjson.dumps(rows))
    assert res.status_code == 400
    errors = [(e["row"], e["field"], e["problem"]) for e in res.get_json()["errors"]]
    assert errors == [(17, field, problem)]


def test_missing_and_unknown_fields_in_a_records_batch_are_named(client) -> None:
    rows = records(5, seed=3)
    del rows[2]["petal_width"]
    rows[4]["colour"] = 1.0
    res = post(client, orjson.dumps(rows))
    assert res.status_code == 400
    errors = {(e["row"], e["field"], e["problem"]) for e in res.get_json()["errors"]}
    assert (2, "petal_width", MISSING) in errors
    assert (4, "colour", UNKNOWN) in errors
