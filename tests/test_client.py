"""``mldeploy.client.Client`` against real servers: ``python app.py`` on loopback ports (one per
module, plus one restarted and one with no model), and a small stub HTTP server for answers our
server never gives (429)."""

from __future__ import annotations

import http.server
import json
import logging
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import requests

from mldeploy_client.client import (
    ApiError,
    Client,
    ConnectionFailed,
    FieldError,
    InvalidRequest,
    NotFound,
    RateLimited,
    ServiceUnavailable,
    retry_after,
)
from modeler.data import iris_frame
from modeler.errors import MISSING, NOT_A_NUMBER, NOT_FINITE, NULL
from modeler.modeler import Modeler
from tests.support import REPO, SEED_ROW, clean_env, copy_project, free_port, running, stop, wait_until_up

# The client logs its retries on its module's logger.
CLIENT_LOGGER = "mldeploy_client.client"
CLASSES = ["setosa", "versicolor", "virginica"]


@pytest.fixture
def client(live) -> Iterator[Client]:
    with Client(live[0], timeout=30) as c:
        yield c


def retries_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == CLIENT_LOGGER and "retrying" in r.getMessage()]


def test_one_row_health_ready_and_model(client: Client) -> None:
    answer = client.predict(SEED_ROW)
    assert answer["Class"] == "setosa" and answer["Probabilities"]["setosa"] == 1.0
    assert client.predict(list(SEED_ROW.values()))["Class"] == "setosa"  # numbers in feature order
    assert client.predict(pd.Series(SEED_ROW, dtype=np.float32))["Class"] == "setosa"  # numpy values
    assert client.health() == {"status": "ok"}
    assert client.ready() == {"status": "ready", "ModelVersion": answer["ModelVersion"]}
    model = client.model()
    assert model["version"] == answer["ModelVersion"] and model["classes"] == CLASSES


def test_a_dataframe_in_gives_a_dataframe_out_in_chunks(client: Client, live) -> None:
    flowers = iris_frame().drop(columns="species")
    flowers.index = flowers.index + 1000  # the answer keeps the caller's index
    scored = client.predict_many(flowers, chunk_size=40)  # four requests
    assert list(scored.columns) == ["Class", *CLASSES, "ModelVersion"]
    assert list(scored.index) == list(flowers.index)
    local = Modeler(live[1] / "models")  # the very version the server saved
    assert scored["Class"].tolist() == local.predict(flowers)
    np.testing.assert_array_equal(scored[CLASSES].to_numpy(), local.predict_proba(flowers).to_numpy())
    assert set(scored["ModelVersion"]) == {local.version}

    as_list = client.predict_many([SEED_ROW, [6.5, 3.0, 5.5, 2.0]])
    assert [a["Class"] for a in as_list] == ["setosa", "virginica"]


def test_bad_rows_raise_at_once_with_the_servers_field_errors(client: Client, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=CLIENT_LOGGER)
    flowers = iris_frame().drop(columns="species").head(20).copy()
    flowers.loc[12, "petal_width"] = np.nan
    with pytest.raises(InvalidRequest) as caught:
        client.predict_many(flowers, chunk_size=5)
    # Row 12 of the frame, although it was row 2 of the third request.
    assert caught.value.status == 400
    assert caught.value.errors == [FieldError(12, "petal_width", NOT_FINITE)]

    with pytest.raises(InvalidRequest) as caught:
        client.predict({"sepal_length": 5.0, "sepal_width": "wide"})
    assert FieldError(0, "sepal_width", NOT_A_NUMBER) in caught.value.errors
    assert FieldError(0, "petal_width", MISSING) in caught.value.errors
    assert "sepal_width" in str(caught.value)
    assert retries_logged(caplog) == []  # a 4xx is never retried


def test_numpy_values_are_sent_as_numbers_and_other_objects_are_refused(client: Client) -> None:
    row = np.array(list(SEED_ROW.values()), dtype=np.float32)
    assert client.predict(row)["Class"] == "setosa"
    virginica = np.array([6.5, 3.0, 5.5, 2.0])  # float64 items, in a list of arrays
    assert [a["Class"] for a in client.predict_many([row, virginica])] == ["setosa", "virginica"]
    with pytest.raises(TypeError, match="cannot send a object as JSON"):  # never guessed at (no str())
        client.predict({**SEED_ROW, "petal_width": object()})


def test_allow_errors_scores_every_good_row_and_keeps_each_bad_one_in_place(client: Client, live) -> None:
    flowers = iris_frame().drop(columns="species").head(20).astype({"sepal_width": object})
    flowers.index = flowers.index * 10  # the caller's own index, kept
    flowers.iloc[2, 3] = np.nan  # petal_width
    flowers.iloc[7, 1] = "wide"
    flowers.iloc[8, 1] = None
    flowers.iloc[8, 0] = np.inf
    flowers.iloc[[15, 16, 17, 18, 19], 2] = np.nan  # a whole chunk of bad rows
    scored = client.predict_many(flowers, chunk_size=5, allow_errors=True)

    assert list(scored.columns) == ["Class", *CLASSES, "ModelVersion", "errors"]
    assert list(scored.index) == list(flowers.index)
    bad = [2, 7, 8, 15, 16, 17, 18, 19]
    good = [i for i in range(len(flowers)) if i not in bad]
    # Every good row is scored, as if the bad ones had never been there (chunks 1 and 2 were resent).
    local = Modeler(live[1] / "models")
    expected = local.predict(flowers.iloc[good].astype(float))
    assert scored["Class"].iloc[good].tolist() == expected
    np.testing.assert_array_equal(
        scored[CLASSES].iloc[good].to_numpy(), local.predict_proba(flowers.iloc[good].astype(float)).to_numpy()
    )
    assert set(scored["ModelVersion"].iloc[good]) == {local.version}
    assert scored["errors"].iloc[good].isna().all()
    # Each bad row: no answer, and its own errors, numbered by its position in the input.
    assert scored[["Class", *CLASSES, "ModelVersion"]].iloc[bad].isna().all().all()
    assert scored["errors"].iloc[[2, 7, 8]].tolist() == [
        [FieldError(2, "petal_width", NOT_FINITE)],
        [FieldError(7, "sepal_width", NOT_A_NUMBER)],
        [FieldError(8, "sepal_length", NOT_FINITE), FieldError(8, "sepal_width", NULL)],
    ]
    assert scored["errors"].iloc[15:].tolist() == [[FieldError(i, "petal_length", NOT_FINITE)] for i in range(15, 20)]


def test_allow_errors_on_a_list_and_more_bad_rows_than_one_answer_lists(client: Client) -> None:
    # The server lists at most 100 problems per request: the client keeps asking until every
    # bad row is named and every good one scored, in input order.
    rows = [list(SEED_ROW.values()) if i % 3 == 0 else [5.0, "x", 1.5, 0.3] for i in range(600)]
    answers = client.predict_many(rows, chunk_size=600, allow_errors=True)
    assert len(answers) == 600
    assert all(a["Class"] == "setosa" for a in answers[::3])
    assert [a for i, a in enumerate(answers) if i % 3] == [
        {"errors": [FieldError(i, "sepal_width", NOT_A_NUMBER)]} for i in range(600) if i % 3
    ]
    assert client.predict_many([], allow_errors=True) == []


def test_allow_errors_still_raises_what_no_row_is_to_blame_for(client: Client) -> None:
    # Over the server's row limit (MLDEPLOY_MAX_BATCH_ROWS, 10,000): the whole request is refused.
    with pytest.raises(InvalidRequest) as caught:
        client.predict_many([list(SEED_ROW.values())] * 10_001, chunk_size=10_001, allow_errors=True)
    assert caught.value.status == 413 and caught.value.errors[0].row is None


def test_unknown_path_is_not_found(live) -> None:
    with Client(live[0] + "/no/such/prefix") as other, pytest.raises(NotFound) as caught:
        other.health()
    assert caught.value.status == 404 and "Not found" in caught.value.message


def test_the_client_needs_neither_flask_nor_sklearn(live) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        for name in ("flask", "flask_restful", "werkzeug", "sklearn", "joblib"):
            sys.modules[name] = None  # importing any of them now fails
        sys.path.insert(0, {str(REPO)!r})
        from mldeploy_client.client import Client
        print(Client({live[0]!r}).predict({SEED_ROW!r})["Class"])
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "setosa"


def test_a_call_during_a_server_restart_is_retried_until_it_answers(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=CLIENT_LOGGER)
    project = copy_project(tmp_path)
    port = free_port()
    args = [sys.executable, "app.py", "--port", str(port)]
    with (
        Client(f"http://127.0.0.1:{port}", timeout=30, retries=10, max_backoff=2.0) as client,
        running(args[1:], project, port) as (_, first),
    ):
        before = client.predict(SEED_ROW)  # the session now holds a kept-alive connection
        stop(first)
        # The port is closed now; start the server again and call at once, before it listens.
        second = subprocess.Popen(args, cwd=project, env=clean_env(), stdout=subprocess.DEVNULL)
        try:
            after = client.predict(SEED_ROW)
            wait_until_up(f"http://127.0.0.1:{port}/health", second)
        finally:
            stop(second)
    assert after["Class"] == "setosa" and after["ModelVersion"] == before["ModelVersion"]
    retried = retries_logged(caplog)
    assert retried and all("ConnectionError" in message for message in retried)

    with pytest.raises(ConnectionFailed):  # nobody there at all: the retries run out
        Client(f"http://127.0.0.1:{port}", retries=2, sleep=lambda s: None).health()


def test_503_is_retried_after_the_servers_retry_after(tmp_path: Path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger=CLIENT_LOGGER)
    project = copy_project(tmp_path)
    port = free_port()
    models = tmp_path / "empty-models"
    # POLL_INTERVAL 0: the server looks for a model at every request, as the waits here are not real.
    env = clean_env(
        MLDEPLOY_MODEL_DIR=str(models),
        MLDEPLOY_LAZY_TRAIN="false",
        MLDEPLOY_RETRY_AFTER="2",
        MLDEPLOY_POLL_INTERVAL="0",
    )
    with running(["app.py", "--port", str(port)], project, port, env=env) as (base, _):
        waited: list[float] = []
        # No model and no lazy training: 503 with Retry-After 2, until one is trained.
        with pytest.raises(ServiceUnavailable) as caught:
            Client(base, retries=2, sleep=waited.append).predict(SEED_ROW)
        assert caught.value.status == 503 and "not ready" in caught.value.message.lower()
        assert waited == [2.0, 2.0]

        def train_while_waiting(seconds: float) -> None:
            waited.append(seconds)
            Modeler(models).fit()

        waited.clear()
        answer = Client(base, retries=2, sleep=train_while_waiting).predict(SEED_ROW)
        assert answer["Class"] == "setosa" and waited == [2.0]
    assert len(retries_logged(caplog)) == 3


class Scripted(http.server.BaseHTTPRequestHandler):
    """Answers each request with the next (status, headers, body) of the server's ``script``."""

    def do_GET(self) -> None:
        status, headers, body = self.server.script.pop(0)
        self.server.seen += 1
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {**headers, "Content-Type": "application/json"}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:  # keep the test output clean
        pass


@pytest.fixture
def stub() -> Iterator[http.server.HTTPServer]:
    server = http.server.HTTPServer(("127.0.0.1", 0), Scripted)
    server.script, server.seen = [], 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def test_429_honours_retry_after_and_other_4xx_are_not_retried(stub) -> None:
    url = f"http://127.0.0.1:{stub.server_port}"
    waited: list[float] = []
    client = Client(url, retries=3, sleep=waited.append)
    stub.script = [(429, {"Retry-After": "3"}, {"message": "slow down"}), (200, {}, {"status": "ok"})]
    assert client.health() == {"status": "ok"} and waited == [3.0]

    stub.script = [(409, {}, {"message": "conflict"})]
    stub.seen = 0
    with pytest.raises(ApiError) as caught:
        client.health()
    assert caught.value.status == 409 and stub.seen == 1

    stub.script = [(429, {"Retry-After": "3600"}, {"message": "come back in an hour"})]
    with pytest.raises(RateLimited):  # longer than max_retry_after: not waited for
        client.health()
    assert waited == [3.0]


def test_retry_after_as_an_http_date() -> None:
    answer = requests.Response()
    answer.headers["Retry-After"] = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= retry_after(answer) <= 30
    answer.headers["Retry-After"] = "soon"
    assert retry_after(answer) is None
