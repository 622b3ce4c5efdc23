"""Live accuracy and drift as Prometheus gauges, computed when ``/metrics`` is scraped.

prometheus-client's multiprocess mode merges what each worker wrote to its own files; a figure
of the shared log is no worker's to write. So these gauges are not stored anywhere: the worker
that answers the scrape computes them from the log (the current version, over the last
``MLDEPLOY_MONITORING_WINDOW`` rows) and appends them to the exposition. Every worker, and every
replica on one PostgreSQL log, gives the same figures. The cost is bounded by the window and
paid at most once per :data:`CACHE_SECONDS` per worker.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from flask import Response
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from mldeploy.http import metrics
from mldeploy.monitoring.drift import VERDICTS, drift
from mldeploy.monitoring.feedback import REGRESSION
from mldeploy.monitoring.monitor import Monitor, task_of, version_facts
from mldeploy.monitoring.performance import performance
from mldeploy.monitoring.windows import Window
from modeler.modeler import Modeler

log = logging.getLogger(__name__)

CACHE_SECONDS = 5.0
PREFIX = "mldeploy_"


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, labels=labels)


def families(monitor: Monitor) -> list[Metric]:
    """The gauges of the current version, from the log; none when no model is loaded yet."""
    modeler = monitor.modeler
    up = _gauge("monitoring_up", "1 when the live figures below could be read from the prediction log.", [])
    if not monitor.enabled or not modeler.is_ready:
        return []
    metadata = modeler.metadata
    version = metadata["version"]
    window = Window(monitor.window)
    try:
        with monitor.store() as store:
            facts = version_facts(metadata)
            live = performance(store, monitor.model, version, window, task_of(metadata), facts.classes or ())
            reference = metadata.get("reference")
            drifted = drift(store, monitor.model, version, reference, window) if isinstance(reference, dict) else None
    except Exception as exc:  # the scrape must answer: the other metrics still count
        log.warning("live figures unavailable for /metrics: %s: %s", type(exc).__name__, exc)
        up.add_metric([], 0)
        return [up]
    up.add_metric([], 1)
    found = [up, *performance_families(version, live)]
    holdout = (metadata.get("holdout") or {}).get("accuracy")
    if holdout is not None:  # what the live accuracy is compared with (the accuracy-drop alert)
        gauge = _gauge("holdout_accuracy", "Accuracy of the version on its training holdout.", ["version"])
        gauge.add_metric([version], holdout)
        found.append(gauge)
    if drifted is not None:
        found.extend(drift_families(version, drifted))
    return found


def performance_families(version: str, live: dict) -> Iterator[Metric]:
    """Labelled rows and the figures of :func:`~mldeploy.monitoring.performance.performance`."""
    labelled = _gauge("live_labelled_rows", "Rows with ground truth in the monitoring window.", ["version"])
    labelled.add_metric([version], live["labelled"])
    yield labelled
    if live["task"] == REGRESSION:
        for key, doc in (("mae", "mean absolute error"), ("rmse", "root mean squared error"), ("r2", "R squared")):
            if live[key] is not None:
                gauge = _gauge(f"live_{key}", f"Live {doc} against ground truth (monitoring window).", ["version"])
                gauge.add_metric([version], live[key])
                yield gauge
        return
    if live["accuracy"] is not None:
        accuracy = _gauge("live_accuracy", "Share of labelled rows predicted right (monitoring window).", ["version"])
        accuracy.add_metric([version], live["accuracy"])
        yield accuracy
    for key in ("precision", "recall", "f1"):
        gauge = _gauge(f"live_{key}", f"Live {key} per class (monitoring window).", ["version", "class"])
        for cls, figures in live["classes"].items():
            if figures[key] is not None:
                gauge.add_metric([version, cls], figures[key])
        yield gauge


def drift_families(version: str, drifted: dict) -> Iterator[Metric]:
    """PSI, p-value and verdict per feature and for the predictions."""
    rows = _gauge("drift_window_rows", "Logged rows compared with the training reference.", ["version"])
    rows.add_metric([version], drifted["rows"])
    yield rows
    levels = ", ".join(f"{i} {v}" for i, v in enumerate(VERDICTS))
    psi = _gauge("drift_psi", "Population stability index of each feature against training.", ["version", "feature"])
    p_value = _gauge("drift_p_value", "KS (numbers) or chi-squared (categories) p-value.", ["version", "feature"])
    level = _gauge("drift_verdict", f"Drift verdict of each feature: {levels}.", ["version", "feature"])
    for name, figures in drifted["features"].items():
        if figures["psi"] is not None:
            psi.add_metric([version, name], figures["psi"])
            level.add_metric([version, name], VERDICTS.index(figures["verdict"]))
        if figures["p_value"] is not None:
            p_value.add_metric([version, name], figures["p_value"])
    yield from (psi, p_value, level)
    answered = drifted["prediction"]
    prediction_psi = _gauge("prediction_drift_psi", "PSI of the predictions against training.", ["version"])
    prediction_level = _gauge("prediction_drift_verdict", f"Drift verdict of the predictions: {levels}.", ["version"])
    if answered["psi"] is not None:
        prediction_psi.add_metric([version], answered["psi"])
        prediction_level.add_metric([version], VERDICTS.index(answered["verdict"]))
    yield from (prediction_psi, prediction_level)


class LiveFigures:
    """The gauges' exposition text, recomputed at most once per :data:`CACHE_SECONDS`."""

    def __init__(self, monitor: Monitor, cache_seconds: float = CACHE_SECONDS) -> None:
        self.monitor = monitor
        self.cache_seconds = cache_seconds
        self._lock = threading.Lock()
        self._cached: tuple[float, bytes] | None = None

    def collect(self) -> Iterator[Metric]:
        """prometheus-client's collector protocol."""
        yield from families(self.monitor)

    def exposition(self) -> bytes:
        """The gauges in Prometheus text format."""
        with self._lock:  # one computation at a time; a waiting scrape gets the fresh result
            now = time.monotonic()
            if self._cached is None or now - self._cached[0] >= self.cache_seconds:
                registry = CollectorRegistry(auto_describe=False)
                registry.register(self)
                self._cached = (now, generate_latest(registry))
            return self._cached[1]


def serve_metrics(modeler: Modeler, figures: LiveFigures) -> Response:
    """``GET /metrics``: the counters of every worker, then the live figures of the shared log."""
    response = metrics.serve_metrics(modeler)
    response.set_data(response.get_data() + figures.exposition())
    return response
