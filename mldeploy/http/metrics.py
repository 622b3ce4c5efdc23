"""Prometheus metrics (prometheus-client), correct under gunicorn's several workers.

Under gunicorn, ``mldeploy/http/gunicorn_conf.py`` sets ``PROMETHEUS_MULTIPROC_DIR`` before this module is
imported (prometheus-client picks its value store at import), wipes the folder at each start and
marks dead workers in ``child_exit``; ``/metrics`` then merges every process's files into a fresh
registry. Without that variable (``python app.py``, tests) the default registry is served.
"""

from __future__ import annotations

import bisect
import collections
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path

from flask import Flask, Request, Response, current_app
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from mldeploy.api import payload
from mldeploy.http import request_context
from modeler.errors import InvalidInput
from modeler.modeler import Modeler
from modeler.predictors.base import LABELS

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_PATH = "/metrics"
# Requests to no route share one label, so that scanners cannot grow the series without bound.
UNMATCHED = "(unmatched)"
# Field labels are bounded the same way: the model's features, the body's own keys, or these.
WHOLE_BODY = "(body)"
OTHER_FIELD = "(other)"
BODY_KEYS = frozenset({payload.FEATURES, payload.INSTANCES})

REQUESTS = Counter(
    "mldeploy_http_requests_total", "HTTP requests answered, by endpoint and status.", ["method", "endpoint", "status"]
)
LATENCY = Histogram(
    "mldeploy_http_request_duration_seconds",
    "Time from the request's arrival in the app to its answer, by endpoint and status.",
    ["method", "endpoint", "status"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PREDICTIONS = Counter("mldeploy_predictions_total", "Rows predicted, by predicted class.", ["class"])
VALIDATION_FAILURES = Counter(
    "mldeploy_validation_failures_total", "Problems found in /predict input, by field.", ["field"]
)
OUT_OF_RANGE = Counter(
    "mldeploy_out_of_range_total", "Feature values outside the range seen in training, by feature.", ["field"]
)
# Info-style: 1 for the version served, 0 for one no longer served. "livemostrecent" keeps the
# latest value any live process wrote, so a worker's switch overrides the master's preload.
MODEL_INFO = Gauge(
    "mldeploy_model_info", "The model version being served (value 1).", ["version"], multiprocess_mode="livemostrecent"
)
MODEL_EVENTS = Counter("mldeploy_model_events_total", "Model loads and trainings, by event.", ["event"])
# Several models and rollouts: which model and version answered (role: current, pinned or candidate).
MODEL_ANSWERS = Counter(
    "mldeploy_model_answers_total",
    "Prediction requests answered, by model, version and role.",
    ["model", "version", "role"],
)

# The prediction log (mldeploy/monitoring): rows written, and rows dropped by reason
# (mldeploy.monitoring.writer.DROP_REASONS: queue_full, database, rejected, invalid, closed).
LOGGED = Counter("mldeploy_prediction_log_rows_total", "Answered rows written to the prediction log.")
LOG_DROPPED = Counter(
    "mldeploy_prediction_log_dropped_total", "Answered rows the prediction log could not keep, by reason.", ["reason"]
)


class Series:
    """What one request series counts, as prometheus-client keeps it: the value behind a
    counter's child and the values behind a latency histogram's child (its sum, and one per
    bucket), reached once when the series is first seen.

    The children's own ``inc`` and ``observe`` check on every call that the metric has its labels
    (two calls each) and ``observe`` walks the buckets in Python; with five a request, that was
    about 40 of the 210 Python calls the service adds to a one-row request (cProfile). These add
    the same amounts to the same values: the same numbers in ``/metrics`` under one worker or
    several (prometheus-client 0.26, pinned in requirements.txt; tests/test_observability.py
    compares the two with its own ``inc`` and ``observe``).
    """

    __slots__ = ("_bounds", "_buckets", "_count", "_sum")

    def __init__(self, counter: Counter, histogram: Histogram | None = None) -> None:
        self._count = counter._value
        if histogram is not None:
            self._sum, self._buckets, self._bounds = histogram._sum, histogram._buckets, histogram._upper_bounds

    def inc(self, amount: float = 1) -> None:
        """The counter's ``inc(amount)`` (``amount`` is a count: never negative)."""
        self._count.inc(amount)

    def observe(self, seconds: float) -> None:
        """The histogram's ``observe(seconds)``: its sum, and the first bucket whose bound is at
        least ``seconds`` (the last bound is +Inf)."""
        self._sum.inc(seconds)
        self._buckets[bisect.bisect_left(self._bounds, seconds)].inc(1)


_served = {"version": None}
_served_lock = threading.Lock()
# The series of REQUESTS and LATENCY by (method, endpoint, status), of PREDICTIONS by label text.
_REQUEST_SERIES: dict[tuple[str, str, int], Series] = {}
_PREDICTION_SERIES: dict[str, Series] = {}
# The series of MODEL_ANSWERS by (model, version, role).
_ANSWER_SERIES: dict[tuple[str, str, str], Series] = {}


def note_version(version: str) -> None:
    """Mark ``version`` as served by this process (and the one before as not)."""
    if _served["version"] == version:  # every prediction asks; the lock is for a change only
        return
    with _served_lock:
        previous = _served["version"]
        if previous == version:
            return
        if previous is not None:
            MODEL_INFO.labels(previous).set(0)
        MODEL_INFO.labels(version).set(1)
        _served["version"] = version


def count_model_answer(model: str, version: str, role: str) -> None:
    """Count one prediction request answered by ``model``'s ``version`` in ``role``."""
    key = (model, version, role)
    child = _ANSWER_SERIES.get(key)
    if child is None:
        child = _ANSWER_SERIES[key] = Series(MODEL_ANSWERS.labels(model, version, role))
    child.inc()


def count_out_of_range(fields: Iterable[str]) -> None:
    """Count feature values outside their training range (names are the model's features)."""
    for field, count in collections.Counter(fields).items():
        OUT_OF_RANGE.labels(field).inc(count)


def count_logged(rows: int) -> None:
    """PredictionLog callback: ``rows`` written to the prediction log."""
    LOGGED.inc(rows)


def count_log_dropped(rows: int, reason: str) -> None:
    """PredictionLog callback: ``rows`` dropped from the prediction log, and why."""
    LOG_DROPPED.labels(reason).inc(rows)


def on_model_event(event: str, version: str) -> None:
    """Modeler subscriber: count loads and trainings, and note the version now served."""
    MODEL_EVENTS.labels(event).inc()
    note_version(version)


def _field_label(field: str | None, known: frozenset[str]) -> str:
    if field is None:
        return WHOLE_BODY
    return field if field in known else OTHER_FIELD


def matched_rule(req: Request) -> str | None:
    """The rule ``req``'s path matched, also when its method did not (a 405)."""
    rule = req.url_rule
    if rule is not None:
        return rule.rule
    error = req.routing_exception
    if isinstance(error, MethodNotAllowed) and error.valid_methods:
        # Match the path again with a method the route has: same rule, without the 405.
        adapter = current_app.url_map.bind_to_environ(req.environ)
        try:
            rule, _ = adapter.match(method=error.valid_methods[0], return_rule=True)
        except HTTPException:  # cannot happen for a path that just matched; count it unmatched
            return None
        return rule.rule
    return None


def endpoint_label(req: Request, endpoints: Mapping[str, str]) -> str:
    """The ``endpoint`` label: the route's path (an alias such as a trailing-slash form counts as
    its route, through ``endpoints``), or UNMATCHED for a path no route has."""
    rule = matched_rule(req)
    return UNMATCHED if rule is None else endpoints.get(rule, rule)


def _request_series(method: str, endpoint: str, status: int) -> Series:
    """The request counter's and latency histogram's series for these labels, made once:
    ``labels()`` checks and joins its values and takes a lock on every call."""
    key = (method, endpoint, status)
    series = _REQUEST_SERIES.get(key)
    if series is None:
        labels = (method, endpoint, str(status))
        series = _REQUEST_SERIES[key] = Series(REQUESTS.labels(*labels), LATENCY.labels(*labels))
    return series


def _prediction_child(label: object) -> Series:
    # Keyed by the label's text, as prometheus-client keys it: True and 1 are one dict key.
    text = str(label)
    child = _PREDICTION_SERIES.get(text)
    if child is None:
        child = _PREDICTION_SERIES[text] = Series(PREDICTIONS.labels(text))
    return child


def observe(
    response: Response, facts: request_context.RequestFacts, modeler: Modeler, endpoints: Mapping[str, str]
) -> None:
    """A reader of ``request_context.finish``: count the request, its latency, its predictions
    or its bad fields."""
    req = facts.request
    series = _request_series(req.method, endpoint_label(req, endpoints), response.status_code)
    series.inc()
    series.observe(facts.elapsed)
    result = facts.inference
    if result is not None:
        refresh_model_info(modeler)  # the current version: a pinned or candidate answer is not "served"
        if result.predictor.can(LABELS):
            answers = result.answers
            if len(answers) == 1:  # a single row: no tally to build
                _prediction_child(answers.label(0)).inc()
            else:
                # One increment per class, not per row: a 10,000-row batch costs three. An
                # integer label (0/1) is its decimal text, as in its JSON answer.
                for label, count in answers.label_counts().items():
                    _prediction_child(label).inc(count)
        else:  # a regressor: its rows are counted, under an empty class (no class label at all)
            _prediction_child("").inc(len(result.answers))
    error = facts.error
    if isinstance(error, InvalidInput):
        known = BODY_KEYS | frozenset(modeler.features if modeler.is_ready else ())
        fields = collections.Counter(_field_label(problem.field, known) for problem in error.errors)
        for field, count in fields.items():
            VALIDATION_FAILURES.labels(field).inc(count)


def forget_dead_workers(folder: str) -> None:
    """Drop the live gauges of processes that are gone, as gunicorn's child_exit hook does for
    its workers: Granian has no hook for a worker's exit (mldeploy/http/granian_server.py)."""
    for path in Path(folder).glob("gauge_live*_*.db"):
        pid = path.stem.rpartition("_")[2]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            multiprocess.mark_process_dead(int(pid), folder)
        except PermissionError:  # alive, another user's
            pass


def exposition() -> bytes:
    """The metrics text: every worker's, merged, under gunicorn or Granian; this process's otherwise."""
    folder = os.environ.get(MULTIPROC_ENV)
    if folder:
        forget_dead_workers(folder)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def refresh_model_info(modeler: Modeler) -> None:
    """Note the version this process serves now: asking the Modeler follows the pointer (one
    ``stat`` per poll interval), so a scrape reports a version another process made current
    even when no prediction came since. Never loads or trains a model that is not loaded."""
    if modeler.is_ready:
        note_version(modeler.version)


def serve_metrics(modeler: Modeler) -> Response:
    """``GET /metrics`` in Prometheus text format, the model-info metric refreshed first."""
    refresh_model_info(modeler)
    return Response(exposition(), content_type=CONTENT_TYPE_LATEST)


def reader(modeler: Modeler, endpoints: Mapping[str, str]) -> request_context.Reader:
    """The request counting, as a reader for ``request_context.init_app`` (``endpoints`` maps
    each alias rule to its route's)."""
    return lambda response, facts: observe(response, facts, modeler, endpoints)


def init_app(app: Flask, modeler: Modeler) -> None:
    """Subscribe to the model's events; the route table serves ``/metrics`` with
    :func:`serve_metrics`, and :func:`reader` counts each request."""
    modeler.subscribe(on_model_event)
    refresh_model_info(modeler)
