"""Metrics and request logs in one process (``python app.py``'s case); tests/test_gunicorn.py
checks them across gunicorn workers."""

from __future__ import annotations

import json
import logging
import os
import time
import uuid

import pytest
from flask.testing import FlaskClient
from prometheus_client import CollectorRegistry, Counter, Histogram
from pythonjsonlogger.json import JsonFormatter

from mldeploy.http import metrics
from mldeploy.http.request_context import REQUEST_ID_HEADER, new_request_id
from mldeploy.http.request_log import ACCESS_LOGGER, json_formatter
from tests.support import SEED_ROW, metric_value


def sample(client: FlaskClient, name: str, **labels: str) -> float:
    res = client.get("/metrics")
    assert res.status_code == 200 and res.content_type.startswith("text/plain")
    return metric_value(res.get_data(as_text=True), name, **labels)


def test_single_process_metrics_count_requests_classes_and_bad_fields(client: FlaskClient) -> None:
    ok = {"endpoint": "/predict", "method": "POST", "status": "200"}
    before = sample(client, "mldeploy_http_requests_total", **ok)
    setosa = sample(client, "mldeploy_predictions_total", **{"class": "setosa"})
    assert client.post("/predict", json=[SEED_ROW] * 3).status_code == 200
    assert sample(client, "mldeploy_http_requests_total", **ok) - before == 1
    assert sample(client, "mldeploy_predictions_total", **{"class": "setosa"}) - setosa == 3
    assert sample(client, "process_cpu_seconds_total") > 0  # the plain registry's process metrics

    fields = {"petal_width": 0.0, "(other)": 0.0, "(body)": 0.0}
    before_fields = {f: sample(client, "mldeploy_validation_failures_total", field=f) for f in fields}
    # A client's own field names never become label values: the series stay bounded.
    client.post("/predict", json={**SEED_ROW, "petal_width": None, "made_up_name_123": 1})
    client.post("/predict", json=[])
    after = {f: sample(client, "mldeploy_validation_failures_total", field=f) for f in fields}
    assert {f: after[f] - before_fields[f] for f in fields} == {"petal_width": 1, "(other)": 1, "(body)": 1}
    assert sample(client, "mldeploy_validation_failures_total", field="made_up_name_123") == 0


def test_unknown_paths_share_one_label(client: FlaskClient) -> None:
    before = sample(client, "mldeploy_http_requests_total", endpoint="(unmatched)", status="404")
    client.get("/scan/a"), client.get("/scan/b")
    assert sample(client, "mldeploy_http_requests_total", endpoint="(unmatched)", status="404") - before == 2


def test_model_version_and_events(client: FlaskClient) -> None:
    version = client.post("/predict", json=SEED_ROW).get_json()["ModelVersion"]
    assert sample(client, "mldeploy_model_info", version=version) == 1
    assert sample(client, "mldeploy_model_events_total", event="trained") >= 1


@pytest.mark.parametrize(
    ("given", "echoed"),
    [("abc-123", True), ("x" * 128, True), ("x" * 129, False), ("bad id", False), ("a\u00e9", False), ("", False)],
    ids=["plain", "longest", "too-long", "space", "non-ascii", "empty"],
)
def test_request_id_is_echoed_when_plain_else_generated(client: FlaskClient, given: str, echoed: bool) -> None:
    headers = {REQUEST_ID_HEADER: given} if given else {}
    res = client.get("/health", headers=headers)
    rid = res.headers[REQUEST_ID_HEADER]
    assert (rid == given) is echoed
    assert rid and len(rid) <= 128


def test_one_json_line_per_request_without_feature_values(client: FlaskClient, caplog) -> None:
    formatter = json_formatter()
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        client.post("/predict", json={**SEED_ROW, "sepal_length": 4.918273645}, headers={REQUEST_ID_HEADER: "r-1"})
        client.post("/predict", json={**SEED_ROW, "petal_width": "x"}, headers={REQUEST_ID_HEADER: "r-2"})
    records = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert len(records) == 2
    ok, bad = (json.loads(formatter.format(r)) for r in records)
    assert {k: ok[k] for k in ("request_id", "method", "path", "status", "rows")} == {
        "request_id": "r-1",
        "method": "POST",
        "path": "/predict",
        "status": 200,
        "rows": 1,
    }
    assert ok["level"] == "INFO" and ok["model_version"] and ok["latency_ms"] > 0
    assert (bad["request_id"], bad["status"], bad["rows"]) == ("r-2", 400, None)
    assert "4.918273645" not in json.dumps(ok)


def test_out_of_range_values_are_counted_per_feature(client: FlaskClient) -> None:
    before = sample(client, "mldeploy_out_of_range_total", field="petal_length")
    res = client.post(
        "/predict", json=[{**SEED_ROW, "petal_length": 25.0}, SEED_ROW, {**SEED_ROW, "petal_length": 0.1}]
    )
    assert res.status_code == 200
    assert sample(client, "mldeploy_out_of_range_total", field="petal_length") - before == 2


def test_open_inference_requests_log_their_rows_and_version(client: FlaskClient, caplog) -> None:
    tensor = {"name": "x", "datatype": "FP64", "shape": [2, 4], "data": [5.0, 3.2, 1.5, 0.3] * 2}
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        res = client.post("/v2/models/iris/infer", json={"inputs": [tensor]})
    assert res.status_code == 200
    (record,) = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert (record.rows, record.model_version) == (2, res.get_json()["model_version"])


def test_a_request_line_is_the_text_the_generic_formatter_writes(client: FlaskClient, caplog) -> None:
    # Built directly from its known fields (the fast path), a request's line must still be what
    # python-json-logger writes for the same record, non-ASCII and control characters included.
    formatter = json_formatter()
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        client.post("/predict", json=SEED_ROW, headers={REQUEST_ID_HEADER: "r-fast"})
        client.get("/caf%C3%A9/%0A%22x")  # 404, its path non-ASCII with a newline and a quote
    records = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    assert len(records) == 2
    for record in records:
        fresh = logging.makeLogRecord({k: v for k, v in record.__dict__.items() if k not in ("message", "asctime")})
        fast = formatter.format(fresh)
        assert fast == JsonFormatter.format(formatter, fresh)  # the generic path of the same class
        assert fast.isascii() and "\n" not in fast
    lines = [json.loads(formatter.format(r)) for r in records]
    assert (lines[0]["request_id"], lines[1]["path"]) == ("r-fast", '/café/\n"x')


def test_a_series_counts_exactly_what_prometheus_clients_own_inc_and_observe_count() -> None:
    """metrics.Series adds to the values behind a counter's and a histogram's children directly:
    the exposition must be what the children's own calls give, bounds and +Inf included."""
    registry = CollectorRegistry()
    buckets = metrics.LATENCY._upper_bounds[:-1]  # the service's own bounds
    pairs = {
        name: (
            Counter(f"{name}_requests", "n", ["k"], registry=registry).labels("a"),
            Histogram(f"{name}_seconds", "s", ["k"], buckets=buckets, registry=registry).labels("a"),
        )
        for name in ("own", "series")
    }
    series = metrics.Series(*pairs["series"])
    amounts = [0.0, 1e-6, *buckets, *(b * 1.0001 for b in buckets), 0.003, 42.0, 1e9]
    own_counter, own_histogram = pairs["own"]
    for amount in amounts:
        own_counter.inc()
        own_histogram.observe(amount)
        series.inc()
        series.observe(amount)

    def samples(name: str) -> dict:
        return {
            (s.name.removeprefix(name), tuple(sorted(s.labels.items()))): s.value
            for metric in registry.collect()
            if metric.name.startswith(name)
            for s in metric.samples
            if not s.name.endswith("_created")
        }

    own, ours = samples("own"), samples("series")
    assert own == ours and len(own) == len(buckets) + 4  # the buckets, +Inf, count, sum, total
    assert own[("_seconds_bucket", (("k", "a"), ("le", "+Inf")))] == len(amounts)


def test_the_metrics_and_the_log_line_carry_the_same_latency(client: FlaskClient, caplog) -> None:
    ok = {"endpoint": "/predict", "method": "POST", "status": "200"}
    before = sample(client, "mldeploy_http_request_duration_seconds_sum", **ok)
    with caplog.at_level(logging.INFO, logger=ACCESS_LOGGER):
        client.post("/predict", json=SEED_ROW)
    (record,) = [r for r in caplog.records if r.name == ACCESS_LOGGER]
    observed = sample(client, "mldeploy_http_request_duration_seconds_sum", **ok) - before
    # One clock read for both: equal to the log line's 3 decimals of a millisecond.
    assert abs(observed * 1000 - record.latency_ms) <= 0.0005 + 1e-9


def test_a_new_request_id_is_a_uuid7_of_its_time() -> None:
    before = time.time_ns() // 1_000_000
    ids = [new_request_id() for _ in range(1000)]
    after = time.time_ns() // 1_000_000
    assert len(set(ids)) == 1000
    for rid in ids:
        assert uuid.UUID(rid).version == 7 and uuid.UUID(rid).variant == uuid.RFC_4122
        assert uuid.UUID(rid).hex == rid
        assert before <= int(rid[:12], 16) <= after  # its first 48 bits: Unix milliseconds
    # Time-ordered (what keeps the log's index growing at its end): an id made a millisecond
    # later sorts after every earlier one.
    time.sleep(0.002)
    later = new_request_id()
    assert later > max(ids)


def test_a_forked_process_never_repeats_its_parents_request_ids() -> None:
    """Ids' random parts are read 256 at a time: a fork (a gunicorn worker) starts with none of
    the parent's unused ones, else parent and child would hand out the same ids."""
    new_request_id()  # the parent now holds random parts it has not used
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next 100 ids, then out without pytest's clean-up
        os.close(read)
        os.write(write, " ".join(new_request_id() for _ in range(100)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split()
    os.waitpid(pid, 0)
    parent = [new_request_id() for _ in range(100)]
    assert len(child) == 100
    # The last 16 hex digits: the variant and 62 random bits, which a shared pool would repeat.
    assert {rid[-16:] for rid in child}.isdisjoint(rid[-16:] for rid in parent)


# Run in a process of its own: pytest's log capture adds handlers to the root logger, and with
# them the line goes the generic way (as it must for any set-up but configure_logging's own).
DIRECT_LINE_SCRIPT = r"""
import io, json, logging, sys
from mldeploy.http import request_log
from mldeploy.http.app import create_app
request_log.configure_logging("INFO")
handler = logging.root.handlers[0]
stream = io.StringIO()
handler.setStream(stream)
handled = []
generic_handle = request_log.log.handle
request_log.log.handle = lambda record: (handled.append(record), generic_handle(record))
client = create_app({"MODEL_DIR": sys.argv[1], "WARMUP": False}).test_client()
client.post("/predict", json={"sepal_length": 5.0, "sepal_width": 3.2, "petal_length": 1.5, "petal_width": 0.3},
            headers={"X-Request-ID": "r-direct"})
client.get("/caf%C3%A9/%0A%22x")
direct = [json.loads(line) for line in stream.getvalue().splitlines() if '"logger":"mldeploy.access"' in line]
# The same fields as a record, through the formatter's generic path (python-json-logger's).
lines = []
for found in direct:
    record = logging.makeLogRecord({"name": "mldeploy.access", "msg": "request", "levelname": "INFO",
        "levelno": 20, "process": found["pid"], **{k: found[k] for k in request_log.ACCESS_FIELDS}})
    lines.append(json.loads(request_log.JsonFormatter.format(handler.formatter, record)))
print(json.dumps({"direct": direct, "generic": lines, "records": len(handled)}))
"""


def test_a_line_written_straight_to_the_handler_is_the_generic_line(tmp_path) -> None:
    import re
    import subprocess
    import sys

    from tests.support import REPO, clean_env

    done = subprocess.run(
        [sys.executable, "-c", DIRECT_LINE_SCRIPT, str(tmp_path / "models")],
        cwd=REPO,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = json.loads(done.stdout.splitlines()[-1])
    direct, generic = found["direct"], found["generic"]
    assert found["records"] == 0  # written straight to the stream: no record made, no logger walked
    assert [line["request_id"] for line in direct[:1]] == ["r-direct"] and len(direct) == 2
    assert direct[1]["path"] == '/café/\n"x' and direct[1]["status"] == 404
    for fast, slow in zip(direct, generic, strict=True):
        assert list(fast) == list(slow)  # the same keys in the same order
        assert {k: v for k, v in fast.items() if k != "time"} == {k: v for k, v in slow.items() if k != "time"}
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}", fast["time"])
