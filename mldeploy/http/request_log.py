"""Structured logs: JSON lines from python-json-logger, one per request, with its request id.

A request's line carries the id (the client's ``X-Request-ID`` or a new one, echoed in the
response), method, path, status, latency, model version and row count. Feature values are
never logged: they may be personal data, and they would make the lines unbounded.
"""

from __future__ import annotations

import logging
import logging.config

from flask import Flask, Response, g, request
from pythonjsonlogger.json import JsonFormatter

from mldeploy.http import request_context

ACCESS_LOGGER = "mldeploy.access"
# Record attributes every line starts with (renamed as shown); a request line adds the fields of
# log_request.
FIELDS = ["asctime", "levelname", "name", "process", "message"]
RENAMED = {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"}

log = logging.getLogger(ACCESS_LOGGER)


def json_formatter() -> JsonFormatter:
    """The formatter of every line: one JSON object per record."""
    return JsonFormatter(FIELDS, rename_fields=RENAMED)


def logging_config(level: str = "INFO") -> dict:
    """A ``logging.config.dictConfig`` mapping: every logger, gunicorn's too, as JSON on stderr."""
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": json_formatter}},
        "handlers": {"json": handler},
        "root": {"level": level, "handlers": ["json"]},
        "loggers": {
            # gunicorn's error log does not propagate; it gets our handler (gunicorn_conf.py
            # sets errorlog = None so that gunicorn adds no text handler beside it). Its access
            # log is left alone: off by default, plain text when asked for (--access-logfile).
            "gunicorn.error": {"level": level, "handlers": ["json"], "propagate": False},
            # werkzeug's access lines (python app.py) would double mldeploy's own.
            "werkzeug": {"level": "WARNING"},
        },
    }


def configure_logging(level: str = "INFO") -> None:
    """Send every log record to stderr as one JSON line."""
    logging.config.dictConfig(logging_config(level))


def log_request(response: Response) -> Response:
    """``after_request``: echo the request id and write the request's one log line."""
    rid = request_context.request_id()
    if rid:
        response.headers[request_context.REQUEST_ID_HEADER] = rid
    result = request_context.inference()
    log.info(
        "request",
        extra={
            "request_id": rid,
            "method": request.method,
            "path": request.path,
            "status": response.status_code,
            "latency_ms": round(request_context.elapsed_seconds() * 1000, 3),
            "model": g.get("model_name"),
            "model_role": g.get("model_role"),
            "model_version": result.version if result else None,
            "rows": len(result.rows) if result else None,
        },
    )
    return response


def init_app(app: Flask) -> None:
    """Give each request an id first thing, and log it last."""
    app.before_request(request_context.begin)
    app.after_request(log_request)
