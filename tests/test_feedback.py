"""Ground truth and live performance: ``POST /feedback`` and ``GET /model/performance`` on the
prediction log, in SQLite and in a throwaway PostgreSQL (tests/postgres.py).

The predictions are written to the log the way a worker writes them (``PredictionLog``), so
each test knows exactly which rows the log holds; the figures are checked against scikit-learn's
own metrics on the same labels.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sklearn.metrics import (
    confusion_matrix,
    mean_absolute_error,
    mean_squared_error,
    precision_recall_fscore_support,
    r2_score,
)

from mldeploy.contract import CLASS, PREDICTION
from mldeploy.http.app import EXTENSION, create_app
from mldeploy.monitoring import PredictionLog
from mldeploy.monitoring.windows import MAX_ROWS
from tests.support import SEED_ROW

pytest_plugins = ["tests.postgres"]

MODEL = "iris"  # the default MLDEPLOY_MODEL_NAME, recorded with each row
CLASSES = ["setosa", "versicolor", "virginica"]
# A version id no saved version has: its rows are judged by what the log shows (a regressor's).
GONE_VERSION = "20990101T000000Z-abcdef"


@pytest.fixture
def app(model_dir: Path, log_database: str) -> Flask:
    """The service with its log in each backend in turn; the model trained and loaded."""
    app = create_app({"TESTING": True, "MODEL_DIR": str(model_dir), "WARMUP": False, "LOG_DATABASE": log_database})
    assert app.extensions[EXTENSION].warm_up()
    return app


@pytest.fixture
def version(app: Flask) -> str:
    return app.extensions[EXTENSION].modeler.version


def write_log(database: str, requests: dict[str, list[object]], version: str, *, regression: bool = False) -> None:
    """Log ``{request id: [answer per row]}`` as a worker does, and wait until it is written."""
    key = PREDICTION if regression else CLASS
    with PredictionLog(database, model=MODEL) as log:
        for request_id, answers in requests.items():
            assert log.record(request_id, version, [dict(SEED_ROW)] * len(answers), [{key: a} for a in answers])
        assert log.flush(30)


def post(client: FlaskClient, body: object):
    return client.post("/feedback", json=body)


def test_feedback_labels_one_row_and_a_second_replaces_the_first(app: Flask, client: FlaskClient, version: str) -> None:
    write_log(app.config["LOG_DATABASE"], {"req-1": ["setosa"]}, version)
    res = post(client, {"request_id": "req-1", "actual": "setosa"})  # one row: no need to name it
    assert res.status_code == 200, res.get_json()
    assert res.get_json() == {
        "recorded": 1,
        "replaced": 0,
        "rows": [{"request_id": "req-1", "row": 0, "version": version, "actual": "setosa", "predicted": "setosa"}],
    }
    perf = client.get("/model/performance").get_json()
    assert (perf["labelled"], perf["accuracy"]) == (1, 1.0)

    res = post(client, {"request_id": "req-1", "row": 0, "actual": "virginica"})
    assert res.status_code == 200 and res.get_json()["replaced"] == 1
    perf = client.get("/model/performance").get_json()
    assert (perf["labelled"], perf["accuracy"]) == (1, 0.0)  # replaced, not added
    assert perf["confusion_matrix"]["matrix"][CLASSES.index("virginica")][CLASSES.index("setosa")] == 1


def test_rows_of_a_batch_and_a_list_of_feedback(app: Flask, client: FlaskClient, version: str) -> None:
    write_log(app.config["LOG_DATABASE"], {"batch": ["setosa", "versicolor", "virginica"]}, version)
    body = [
        {"request_id": "batch", "row": 2, "actual": "virginica"},
        {"request_id": "batch", "row": 0, "actual": "versicolor"},
    ]
    res = post(client, body)
    assert res.status_code == 200 and res.get_json()["recorded"] == 2
    perf = client.get("/model/performance").get_json()
    assert (perf["labelled"], perf["correct"], perf["accuracy"]) == (2, 1, 0.5)

    # A request of several rows needs its row named.
    res = post(client, {"request_id": "batch", "actual": "setosa"})
    assert res.status_code == 400
    assert res.get_json()["errors"] == [
        {"row": None, "field": "row", "problem": "missing: request 'batch' has 3 rows logged; name one"}
    ]


def test_unknown_request_or_row_is_a_404_naming_it(app: Flask, client: FlaskClient, version: str) -> None:
    write_log(app.config["LOG_DATABASE"], {"known": ["setosa", "setosa"]}, version)
    res = post(client, {"request_id": "never-seen", "actual": "setosa"})
    assert res.status_code == 404
    assert "never-seen" in res.get_json()["message"]
    assert res.get_json()["errors"] == [
        {"row": None, "field": "request_id", "problem": "unknown request id 'never-seen'"}
    ]
    res = post(
        client,
        [{"request_id": "known", "row": 1, "actual": "setosa"}, {"request_id": "known", "row": 5, "actual": "setosa"}],
    )
    assert res.status_code == 404
    assert res.get_json()["errors"] == [
        {"row": 1, "field": "row", "problem": "request 'known' has no row 5 (2 rows logged)"}
    ]
    # All or nothing: the good item of that list was not stored either.
    assert client.get("/model/performance").get_json()["labelled"] == 0


def test_a_label_the_model_does_not_know_is_a_400(app: Flask, client: FlaskClient, version: str) -> None:
    write_log(app.config["LOG_DATABASE"], {"r": ["setosa"]}, version)
    for actual in ("daisy", 1, True, "Setosa"):
        res = post(client, {"request_id": "r", "actual": actual})
        assert res.status_code == 400, actual
        (error,) = res.get_json()["errors"]
        assert error["field"] == "actual"
        assert error["problem"].startswith('not a class the model knows: one of "setosa", "versicolor", "virginica"')
    assert client.get("/model/performance").get_json()["labelled"] == 0


def test_a_regressor_takes_numbers_only(app: Flask, client: FlaskClient) -> None:
    # No saved version has this id (retention deleted it, say): the log says it answered numbers.
    write_log(app.config["LOG_DATABASE"], {"reg": [2.5, 4.0]}, GONE_VERSION, regression=True)
    res = post(client, {"request_id": "reg", "row": 0, "actual": "tall"})
    assert res.status_code == 400
    assert res.get_json()["errors"][0]["problem"].startswith("must be a number: the model is a regressor")
    res = post(client, [{"request_id": "reg", "row": 0, "actual": 3}, {"request_id": "reg", "row": 1, "actual": 4.5}])
    assert res.status_code == 200
    assert [r["actual"] for r in res.get_json()["rows"]] == [3.0, 4.5]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"actual": "setosa"}, "request_id"),
        ({"request_id": "x"}, "actual"),
        ({"request_id": "x", "actual": None}, "actual"),
        ({"request_id": "x", "actual": ["setosa"]}, "actual"),
        ({"request_id": "x", "actual": "setosa", "row": -1}, "row"),
        ({"request_id": "x", "actual": "setosa", "row": 1.5}, "row"),
        ({"request_id": "x", "actual": "setosa", "row": True}, "row"),
        ({"request_id": "has space", "actual": "setosa"}, "request_id"),
        ({"request_id": "x", "actual": "setosa", "extra": 1}, "extra"),
    ],
)
def test_malformed_feedback_is_a_400_naming_the_field(client: FlaskClient, body: dict, field: str) -> None:
    res = post(client, body)
    assert res.status_code == 400, res.get_json()
    assert [e["field"] for e in res.get_json()["errors"]] == [field]


def test_feedback_waits_for_a_prediction_still_on_its_way(app: Flask, client: FlaskClient, version: str) -> None:
    """Another worker's writer holds a record up to its flush interval: feedback sent at once
    still finds it."""
    with PredictionLog(app.config["LOG_DATABASE"], model=MODEL, flush_interval=0.5) as other_worker:
        assert other_worker.record("just-now", version, [dict(SEED_ROW)], [{CLASS: "setosa"}])
        res = post(client, {"request_id": "just-now", "actual": "setosa"})
    assert res.status_code == 200, res.get_json()


def labelled_log(app: Flask, client: FlaskClient, version: str, predicted: list, actual: list) -> None:
    requests = {f"r{i:03d}": [p] for i, p in enumerate(predicted)}
    write_log(app.config["LOG_DATABASE"], requests, version)
    body = [{"request_id": f"r{i:03d}", "actual": a} for i, a in enumerate(actual)]
    assert post(client, body).status_code == 200


def test_performance_matches_scikit_learns_metrics(app: Flask, client: FlaskClient, version: str) -> None:
    rng = np.random.default_rng(3)
    predicted = list(rng.choice(CLASSES[:2], 60))  # virginica is never predicted: its precision is undefined
    actual = list(rng.choice(CLASSES, 60))
    labelled_log(app, client, version, predicted, actual)
    perf = client.get("/model/performance").get_json()
    assert (perf["version"], perf["task"], perf["labelled"]) == (version, "classification", 60)
    assert perf["accuracy"] == pytest.approx(np.mean(np.array(predicted) == np.array(actual)))
    precision, recall, f1, support = precision_recall_fscore_support(
        actual, predicted, labels=CLASSES, zero_division=np.nan
    )
    for i, cls in enumerate(CLASSES):
        figures = perf["classes"][cls]
        for ours, theirs in ((figures["precision"], precision[i]), (figures["recall"], recall[i])):
            assert (ours is None) if math.isnan(theirs) else ours == pytest.approx(theirs)
        assert figures["support"] == support[i]
    assert perf["classes"]["virginica"]["precision"] is None
    assert perf["classes"]["virginica"]["f1"] == 0.0  # defined: 2tp / (2tp + fp + fn) = 0
    assert perf["classes"]["setosa"]["f1"] == pytest.approx(f1[0])
    assert perf["confusion_matrix"] == {
        "labels": CLASSES,
        "matrix": confusion_matrix(actual, predicted, labels=CLASSES).tolist(),
    }


def test_regression_figures_match_scikit_learns(app: Flask, client: FlaskClient) -> None:
    predicted, actual = [1.0, 2.0, 3.5, 5.0], [1.5, 2.0, 3.0, 7.0]
    write_log(app.config["LOG_DATABASE"], {"reg": predicted}, GONE_VERSION, regression=True)
    assert post(client, [{"request_id": "reg", "row": i, "actual": a} for i, a in enumerate(actual)]).status_code == 200
    # The version's metadata is gone: ?version= then needs a saved version, so ask the module.
    from mldeploy.monitoring.performance import regression_report

    report = regression_report(actual, predicted)
    assert report["mae"] == pytest.approx(mean_absolute_error(actual, predicted))
    assert report["rmse"] == pytest.approx(math.sqrt(mean_squared_error(actual, predicted)))
    assert report["r2"] == pytest.approx(r2_score(actual, predicted))
    assert regression_report([2.0], [1.0])["r2"] is None  # one row: R² says nothing


def test_the_window_is_the_last_n_labelled_rows_or_a_span(app: Flask, client: FlaskClient, version: str) -> None:
    # Answered oldest first: the first 5 right, the last 5 wrong.
    labelled_log(app, client, version, ["setosa"] * 10, ["setosa"] * 5 + ["versicolor"] * 5)
    assert client.get("/model/performance?window=5").get_json()["accuracy"] == 0.0
    assert client.get("/model/performance?window=10").get_json()["accuracy"] == 0.5
    assert client.get("/model/performance?window=1h").get_json()["labelled"] == 10
    big = client.get("/model/performance?window=999999999").get_json()
    assert big["window"] == {"rows": MAX_ROWS} and big["labelled"] == 10
    time.sleep(1.1)
    assert client.get("/model/performance?window=1s").get_json()["labelled"] == 0
    for bad in ("0", "-5", "1x", "1.5h", "abc", ""):
        res = client.get(f"/model/performance?window={bad}")
        assert res.status_code == 400, bad
        assert res.get_json()["errors"][0]["field"] == "window"


def test_performance_of_another_version(app: Flask, client: FlaskClient, version: str) -> None:
    labelled_log(app, client, version, ["setosa"], ["setosa"])
    modeler = app.extensions[EXTENSION].modeler
    newer = modeler.fit().version
    assert client.get("/model/performance").get_json()["version"] == newer
    assert client.get("/model/performance").get_json()["labelled"] == 0
    older = client.get(f"/model/performance?version={version}").get_json()
    assert (older["version"], older["labelled"]) == (version, 1)
    res = client.get("/model/performance?version=20000101T000000Z-000000")
    assert res.status_code == 404 and "20000101T000000Z-000000" in res.get_json()["message"]


def test_the_client_posts_feedback_and_reads_performance_and_drift(live) -> None:
    """``mldeploy_client.Client`` against ``python app.py``: a batch, its ground truth, the figures."""
    import requests

    from mldeploy_client import Client, NotFound

    base, _ = live
    answer = requests.post(f"{base}/predict", json=[SEED_ROW, SEED_ROW], timeout=30)
    request_id = answer.headers["X-Request-ID"]
    with Client(base) as client:
        assert client.feedback(request_id, "setosa", row=0)["recorded"] == 1  # posted at once: still found
        done = client.feedback([{"request_id": request_id, "row": 1, "actual": "virginica"}])
        assert done["rows"][0]["predicted"] == "setosa"
        mine = client.performance(window=2)
        assert (mine["labelled"], mine["accuracy"]) == (2, 0.5)
        assert client.performance(window="1h", version=mine["version"])["labelled"] >= 2
        assert client.drift(window=2)["rows"] == 2
        with pytest.raises(NotFound, match="never-sent"):
            client.feedback("never-sent", "setosa")
