"""The service's prediction log: one :class:`~mldeploy.monitoring.writer.PredictionLog` per app
(so per gunicorn worker, whose writer thread starts after the fork), fed by one reader of
:func:`mldeploy.http.request_context.finish`, and closed when the process stops.

The reader records what a resource noted with :func:`mldeploy.http.request_context.note_inference`
(``/predict`` and ``/v2/.../infer``), under the request's ``X-Request-ID``, only when the answer is
a 200: a request that failed after predicting (``/v2``'s version switched meanwhile, an
explanation the model cannot give) was not answered, so it is not logged. Recording costs the
request one append; the rows and their answers are built on the writer's thread
(:mod:`mldeploy.monitoring.answered`, through
:meth:`~mldeploy.monitoring.writer.PredictionLog.record_inference`).

Closing drains the queue: gunicorn's ``worker_exit`` hook (``mldeploy/http/gunicorn_conf.py``)
and ``python app.py``'s exit call :func:`close_logs`; any other interpreter exit closes open logs
too (:mod:`.writer` registers that with ``atexit``).
"""

from __future__ import annotations

import logging

from flask import Flask, Response

from mldeploy.http import metrics, request_context
from mldeploy.http.request_context import RequestFacts
from mldeploy.monitoring import writer
from mldeploy.monitoring.store import DEFAULT_FILE, display_name
from mldeploy.monitoring.writer import PredictionLog
from mldeploy.settings import Settings
from modeler.modeler import Modeler

EXTENSION = "mldeploy_prediction_log"
log = logging.getLogger("mldeploy.monitoring")


def database_of(settings: Settings, modeler: Modeler) -> str:
    """Where the log goes: MLDEPLOY_LOG_DATABASE, else predictions.sqlite3 in the model directory."""
    return settings.log_database or str(modeler.model_dir / DEFAULT_FILE)


def make_log(settings: Settings, modeler: Modeler) -> PredictionLog:
    """The prediction log the settings describe, counting into Prometheus."""
    return PredictionLog(
        database_of(settings, modeler),
        model=settings.model_name,
        sample_rate=settings.log_sample_rate,
        max_age=settings.log_max_age,
        max_rows=settings.log_max_rows,
        queue_size=settings.log_queue_size,
        batch_size=settings.log_batch_size,
        flush_interval=settings.log_flush_interval,
        close_timeout=settings.log_close_timeout,
        on_written=metrics.count_logged,
        on_dropped=metrics.count_log_dropped,
    )


def record_answer(response: Response, facts: RequestFacts, prediction_log: PredictionLog) -> None:
    """Queue this request's prediction (if it made one and was answered)."""
    result = facts.inference
    if result is not None and response.status_code == 200:
        # Under the name of the model that answered (several can share a server: mldeploy/rollout).
        prediction_log.record_inference(result, facts.request_id, model=facts.model_name)


def init_app(app: Flask, settings: Settings, modeler: Modeler) -> request_context.Reader | None:
    """Log every answered prediction, unless MLDEPLOY_LOG_PREDICTIONS is off: the reader that
    does it, for ``request_context.init_app`` (None when the log is off)."""
    if getattr(modeler, "prediction_log", None) is not None:
        # Its rows would be logged twice, once under ids the clients never see.
        raise ValueError(
            "this Modeler records its own predictions (prediction_log=...): the server records each "
            "answer under its request id (MLDEPLOY_LOG_PREDICTIONS); pass a Modeler without one"
        )
    if not settings.log_predictions:
        return None
    prediction_log = make_log(settings, modeler)
    app.extensions[EXTENSION] = prediction_log
    log.debug("prediction log: %s", display_name(prediction_log.database))
    return lambda response, facts: record_answer(response, facts, prediction_log)


def prediction_log_of(app: Flask) -> PredictionLog | None:
    """The app's prediction log, or None when logging is off."""
    return app.extensions.get(EXTENSION)


def close_logs() -> None:
    """Write what every open log of this process holds, then stop their writers (each waits at
    most its close timeout for an unreachable database)."""
    writer.close_open_logs()
