"""The fast paths keep the contract: orjson both ways, the columnar batch form, vectorised batch
validation with the same row/field errors, and serving a saved version from its tree arrays
without importing scikit-learn or pandas."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from flask.testing import FlaskClient

from mldeploy.http import json_limits, jsonio
from mldeploy.http.app import create_app
from modeler import errors
from modeler.errors import InvalidInput, ModelIntegrityError
from modeler.modeler import Modeler
from modeler.store import COMPILED_FILE, METADATA_FILE, VERSIONS_DIR
from modeler.validation import DUPLICATE, TOO_LARGE, Columns
from tests.support import REPO, SEED_ROW

FEATURES = list(SEED_ROW)
VIRGINICA = [6.5, 3.0, 5.5, 2.0]
ROWS = [list(SEED_ROW.values()), VIRGINICA, [5.9, 3.0, 4.2, 1.5]]


def post(client: FlaskClient, body: object):
    return client.post("/predict", data=json.dumps(body), content_type="application/json")


def problems(res) -> list[tuple]:
    assert res.status_code == 400, res.data[:300]
    body = res.get_json()
    assert body["message"]
    return [(e["row"], e["field"], e["problem"]) for e in body["errors"]]


# -- JSON ---------------------------------------------------------------------------------------


def test_responses_are_written_by_orjson(client: FlaskClient) -> None:
    res = post(client, SEED_ROW)
    # Flask-RESTful's own output_json (stdlib) would write '{"Class": "setosa", ...' with spaces.
    assert res.data.startswith(b'{"Class":"setosa","Input":{"sepal_length":5.0,')
    assert res.mimetype == "application/json"


def test_requests_are_parsed_by_orjson_and_only_fall_back_for_what_it_rejects(client, monkeypatch) -> None:
    calls = []
    # Only json_limits' own reference to the stdlib parser is wrapped (the test client uses it too).
    monkeypatch.setattr(json_limits, "json", SimpleNamespace(loads=lambda raw: calls.append(raw) or json.loads(raw)))
    assert post(client, SEED_ROW).status_code == 200
    assert calls == []
    raw = json.dumps(SEED_ROW).replace("0.3", "NaN")
    res = client.post("/predict", data=raw, content_type="application/json")
    assert problems(res) == [(0, "petal_width", errors.NOT_FINITE)]
    assert len(calls) == 1


def test_parsing_pauses_the_collector_and_restores_it(monkeypatch) -> None:
    seen = []
    real = json_limits.orjson.loads

    def spy(raw):
        seen.append(gc.isenabled())
        return real(raw)

    fake = SimpleNamespace(loads=spy, JSONDecodeError=json_limits.orjson.JSONDecodeError)
    monkeypatch.setattr(json_limits, "orjson", fake)
    assert gc.isenabled()
    assert jsonio.loads(b"[[1.0, 2.0]]") == [[1.0, 2.0]]
    with pytest.raises(ValueError):
        jsonio.loads(b"{nope")
    assert seen == [False, False] and gc.isenabled()
    gc.disable()
    try:
        jsonio.loads(b"[]")
        assert not gc.isenabled()  # a caller's choice is left alone
    finally:
        gc.enable()


def test_errors_stay_json_with_a_message(client: FlaskClient) -> None:
    res = client.post("/predict", data="{nope", content_type="application/json")
    assert res.status_code == 400 and res.get_json()["message"] == "Malformed JSON"


# -- the columnar form --------------------------------------------------------------------------


def test_columnar_batch_answers_like_the_record_form(client: FlaskClient) -> None:
    records = post(client, [dict(zip(FEATURES, r, strict=True)) for r in ROWS]).get_json()
    order = [3, 1, 0, 2]  # any column order
    columnar = post(client, {"columns": [FEATURES[i] for i in order], "data": [[r[i] for i in order] for r in ROWS]})
    assert columnar.status_code == 200
    assert columnar.get_json() == records
    assert [p["Class"] for p in records["Predictions"]] == ["setosa", "virginica", "versicolor"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"columns": FEATURES[:3], "data": [r[:3] for r in ROWS]}, (None, "petal_width", errors.MISSING)),
        ({"columns": [*FEATURES, "colour"], "data": [[*r, 1] for r in ROWS]}, (None, "colour", errors.UNKNOWN)),
        ({"columns": [*FEATURES, "sepal_width"], "data": [[*r, 1] for r in ROWS]}, (None, "sepal_width", DUPLICATE)),
        ({"columns": FEATURES, "data": [ROWS[0], [5.0, 3.2, "x", 0.3]]}, (1, "petal_length", errors.NOT_A_NUMBER)),
        ({"columns": FEATURES, "data": [ROWS[0], [5.0, True, 1.5, 0.3]]}, (1, "sepal_width", errors.BOOLEAN)),
        ({"columns": FEATURES, "data": [ROWS[0], ROWS[1], [5.0, 3.2, 1.5, None]]}, (2, "petal_width", errors.NULL)),
        ({"columns": FEATURES, "data": [ROWS[0], [1e39, 3.2, 1.5, 0.3]]}, (1, "sepal_length", TOO_LARGE)),
        ({"columns": FEATURES, "data": [ROWS[0], {"a": 1}]}, (1, None, "not a list of numbers")),
        ({"columns": FEATURES, "data": [ROWS[0], [1.0, 2.0]]}, (1, None, None)),
        ({"columns": FEATURES, "data": []}, (None, None, None)),
        ({"columns": "sepal_length", "data": ROWS}, (None, "columns", None)),
        ({"columns": FEATURES, "data": {"a": 1}}, (None, "data", None)),
        ({"columns": FEATURES}, (None, "data", None)),
        ({"columns": FEATURES, "data": ROWS, "extra": 1}, (None, "extra", errors.UNKNOWN)),
    ],
)
def test_columnar_errors_name_the_row_and_field(client: FlaskClient, body, expected) -> None:
    found = problems(post(client, body))
    assert any(
        all(want is None or got == want for got, want in zip(error, expected, strict=True)) for error in found
    ), found


def test_columnar_nan_literal_is_not_finite(client: FlaskClient) -> None:
    raw = json.dumps({"columns": FEATURES, "data": [ROWS[0], [5.0, 999.0, 1.5, 0.3]]}).replace("999.0", "Infinity")
    res = client.post("/predict", data=raw, content_type="application/json")
    assert problems(res) == [(1, "sepal_width", errors.NOT_FINITE)]


def test_columnar_batch_over_the_row_limit_is_413(model_dir: Path) -> None:
    client = create_app({"MODEL_DIR": str(model_dir), "WARMUP": False, "MAX_BATCH_ROWS": 2}).test_client()
    assert post(client, {"columns": FEATURES, "data": ROWS[:2]}).status_code == 200
    res = post(client, {"columns": FEATURES, "data": ROWS})
    assert res.status_code == 413
    assert "limit of 2" in res.get_json()["errors"][0]["problem"]


# -- vectorised batch validation ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_value", "problem"),
    [(True, errors.BOOLEAN), ("5", errors.NOT_A_NUMBER), (None, errors.NULL), (10**400, TOO_LARGE), (1e39, TOO_LARGE)],
)
@pytest.mark.parametrize("form", ["records", "lists", "columns"])
def test_batch_errors_are_the_same_on_every_form(trained: Modeler, form: str, bad_value, problem) -> None:
    rows = [list(r) for r in ROWS * 4]
    rows[5][2] = bad_value
    x = {
        "records": [dict(zip(FEATURES, r, strict=True)) for r in rows],
        "lists": rows,
        "columns": Columns(FEATURES, rows),
    }[form]
    with pytest.raises(InvalidInput) as caught:
        trained.predict(x)
    assert [(e.row, e.field, e.problem) for e in caught.value.errors] == [(5, "petal_length", problem)]


def test_record_with_a_wrong_key_of_the_same_length_names_both(trained: Modeler) -> None:
    rows = [dict(SEED_ROW), {**{k: v for k, v in SEED_ROW.items() if k != "sepal_width"}, "colour": 1.0}]
    with pytest.raises(InvalidInput) as caught:
        trained.predict(rows)
    assert {(e.row, e.field, e.problem) for e in caught.value.errors} == {
        (1, "sepal_width", errors.MISSING),
        (1, "colour", errors.UNKNOWN),
    }


def test_every_batch_form_gives_the_same_answers(trained: Modeler) -> None:
    rng = np.random.default_rng(3)
    X = np.round(rng.uniform(0, 8, (500, 4)), 2)
    rows = X.tolist()
    expected = trained.predict(X)
    assert trained.predict(rows) == expected
    assert trained.predict([dict(zip(FEATURES, r, strict=True)) for r in rows]) == expected
    assert trained.predict(Columns(FEATURES[::-1], [r[::-1] for r in rows])) == expected
    assert trained.predict(X.astype(np.float32)) == trained.predict(X.astype(np.float32).tolist())
    assert trained.predict([*rows[:1], tuple(rows[1]), *rows[2:]]) == expected  # mixed: the row-by-row path


def test_a_batchs_class_counts_are_a_tally_of_its_labels(trained: Modeler) -> None:
    """The counts /metrics adds per class come from the leaf entries (np.bincount), not a list of
    labels: they are the tally of the labels, for a batch, one row, and a one-row batch."""
    X = np.round(np.random.default_rng(5).uniform([4.3, 2.0, 1.0, 0.1], [7.9, 4.4, 6.9, 2.5], (2_000, 4)), 1)
    for rows in (X, X[:1], X[:1].tolist(), X.tolist()):
        answers = trained.infer(rows).answers
        assert answers.label_counts() == dict(Counter(answers.labels()))
    counts = trained.infer(X).answers.label_counts()
    assert set(counts) == {"setosa", "versicolor", "virginica"} and sum(counts.values()) == 2_000


def test_array_with_nan_names_the_cell(trained: Modeler) -> None:
    X = np.array(ROWS)
    X[2, 1] = np.inf
    with pytest.raises(InvalidInput) as caught:
        trained.predict(X)
    assert [(e.row, e.field, e.problem) for e in caught.value.errors] == [(2, "sepal_width", errors.NOT_FINITE)]


# -- serving from the saved tree arrays ---------------------------------------------------------


def test_a_saved_version_holds_its_tree_arrays_and_serves_from_them(trained: Modeler, model_dir: Path) -> None:
    meta = trained.metadata
    folder = model_dir / VERSIONS_DIR / meta["version"]
    assert meta["compiled"]["file"] == COMPILED_FILE and (folder / COMPILED_FILE).is_file()
    fresh = Modeler(model_dir)
    model = fresh.ensure_ready()
    assert "estimator" not in model.predictor.__dict__  # not unpickled yet
    original = trained.ensure_ready().predictor.tree
    for name in ("feature", "threshold", "left", "right", "leaf_proba"):
        assert np.array_equal(getattr(model.predictor.tree, name), getattr(original, name)), name
    assert type(model.estimator).__name__ == "DecisionTreeClassifier"  # unpickled on demand


def test_a_tampered_tree_file_is_refused(trained: Modeler, model_dir: Path) -> None:
    path = model_dir / VERSIONS_DIR / trained.version / COMPILED_FILE
    path.write_bytes(path.read_bytes().replace(b"0.8", b"0.9", 1))
    with pytest.raises(ModelIntegrityError, match=r"compiled tree .* sha256"):
        Modeler(model_dir, on_corrupt="fail").ensure_ready()


def test_a_version_saved_without_tree_arrays_still_loads(trained: Modeler, model_dir: Path) -> None:
    folder = model_dir / VERSIONS_DIR / trained.version
    meta = json.loads((folder / METADATA_FILE).read_text())
    del meta["compiled"]
    (folder / METADATA_FILE).write_text(json.dumps(meta))
    (folder / COMPILED_FILE).unlink()
    assert Modeler(model_dir).predict(VIRGINICA) == "virginica"


def test_serving_a_saved_version_imports_neither_sklearn_nor_pandas(trained: Modeler, model_dir: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from mldeploy.http.app import create_app
        app = create_app({{"MODEL_DIR": {str(model_dir)!r}, "WARMUP": False}})
        client = app.test_client()
        assert client.post("/predict", json={SEED_ROW!r}).get_json()["Class"] == "setosa"
        batch = {{"columns": {FEATURES!r}, "data": {ROWS!r}}}
        assert client.post("/predict", json=batch).status_code == 200
        assert client.get("/ready").status_code == 200
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} & {{"sklearn", "pandas", "scipy", "joblib"}})
        print(",".join(heavy))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
