"""The monitoring resources: ground truth in (``POST /feedback``), live performance and drift out
(``GET /model/performance``, ``GET /model/drift``). Each reads the shared prediction log through
the app's :class:`~mldeploy.monitoring.monitor.Monitor`."""

from __future__ import annotations

import time

from flask import current_app, request
from flask_restful import Resource

from mldeploy.api.payload import read_json
from mldeploy.monitoring.drift import drift
from mldeploy.monitoring.feedback import parse_feedback, record_feedback
from mldeploy.monitoring.monitor import Monitor, task_of, version_facts
from mldeploy.monitoring.performance import performance
from mldeploy.monitoring.windows import WINDOW, parse_window

VERSION = "version"


def _selection(monitor: Monitor) -> tuple[dict, object]:
    """The version asked for (``?version=``, else the current one) and the window (``?window=``)."""
    window = parse_window(request.args.get(WINDOW), monitor.window)
    monitor.check_enabled()
    return monitor.metadata(request.args.get(VERSION)), window


class Feedback(Resource):
    """``POST /feedback``: the actual answer for logged predictions (one object or a list)."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def post(self) -> dict:
        """Store each label; 404 for a request id or row not in the log, 400 for a label the
        version that answered cannot have."""
        items = parse_feedback(read_json(request), current_app.config["MAX_BATCH_ROWS"])
        with self.monitor.store() as store:
            return record_feedback(store, items, self.monitor.facts, time.time(), waits=self.monitor.waits)


class ModelPerformance(Resource):
    """``GET /model/performance``: accuracy and per-class figures (or MAE, RMSE, R²) from feedback."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def get(self) -> dict:
        """The version's live performance over the window."""
        metadata, window = _selection(self.monitor)
        facts = version_facts(metadata)
        self.monitor.write_own()
        with self.monitor.store() as store:
            return performance(
                store, self.monitor.model, metadata["version"], window, task_of(metadata), facts.classes or ()
            )


class ModelDrift(Resource):
    """``GET /model/drift``: PSI, a p-value and a verdict per feature and for the predictions."""

    def __init__(self, monitor: Monitor) -> None:
        self.monitor = monitor

    def get(self) -> dict:
        """The window's logged rows against the version's training reference (409 without one)."""
        metadata, window = _selection(self.monitor)
        reference = self.monitor.reference(metadata)
        self.monitor.write_own()
        with self.monitor.store() as store:
            return drift(store, self.monitor.model, metadata["version"], reference, window)
