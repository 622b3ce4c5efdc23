"""Structured logs: one compact JSON object per line on stderr, one line per request with its id.

A request's line carries the id (the client's ``X-Request-ID`` or a new one, echoed in the
response), method, path, status, latency, model version and row count. Feature values are
never logged: they may be personal data, and they would make the lines unbounded.

Every record goes through python-json-logger's formatter, except a request's own line: it is
written on every request, so :class:`JsonLineFormatter` builds it directly from its known fields
with orjson (about a tenth of the generic walk of the record), the same text the generic path
writes for it.
"""

from __future__ import annotations

import functools
import json
import logging
import logging.config
import time

import orjson
from flask import Response, g, request
from pythonjsonlogger.json import JsonFormatter

from mldeploy.http.request_context import RequestFacts

ACCESS_LOGGER = "mldeploy.access"
REQUEST_MESSAGE = "request"
# Record attributes every line starts with (renamed as shown); a request line adds ACCESS_FIELDS.
FIELDS = ["asctime", "levelname", "name", "process", "message"]
RENAMED = {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"}
ACCESS_FIELDS = ("request_id", "method", "path", "status", "latency_ms", "model", "model_role", "model_version", "rows")
# Set on the records log_request makes (python-json-logger leaves "_" attributes out of the line).
_ACCESS_MARK = "_mldeploy_access"
# What logging itself records as the file of a record whose caller it did not look for.
_NO_FILE = "(unknown file)"
# Compact, ASCII-only: what orjson writes, once non-ASCII text is escaped.
_compact_dumps = functools.partial(json.dumps, separators=(",", ":"))


def _fresh_record_size() -> int:
    """How many attributes a request's record has before any handler touched it (formatting
    adds ``message`` and ``asctime``; a filter may add more): only then is the fast line exact."""
    record = logging.LogRecord(ACCESS_LOGGER, logging.INFO, _NO_FILE, 0, REQUEST_MESSAGE, (), None)
    return len(record.__dict__) + len(ACCESS_FIELDS) + 1


_FRESH_RECORD_SIZE = _fresh_record_size()

log = logging.getLogger(ACCESS_LOGGER)


class JsonLineFormatter(JsonFormatter):
    """python-json-logger's JSON formatter, compact; a request's line built directly."""

    def __init__(self) -> None:
        super().__init__(FIELDS, rename_fields=RENAMED, json_serializer=_compact_dumps)
        # (second, its "%Y-%m-%d %H:%M:%S" text): one strftime per second, not per line.
        self._second: tuple[int, str] = (-1, "")

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line."""
        attrs = record.__dict__
        if attrs.get(_ACCESS_MARK) and len(attrs) == _FRESH_RECORD_SIZE and not record.args:
            line = self._access_line(record, attrs)
            if line is not None:
                return line
        return super().format(record)

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """logging's default time text (``2026-11-22 02:19:58,442``), its seconds part cached."""
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second, text = self._second
        if int(record.created) != second:
            second = int(record.created)
            text = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = (second, text)
        return self.default_msec_format % (text, record.msecs)

    def _access_line(self, record: logging.LogRecord, attrs: dict) -> str | None:
        # The keys in the generic path's order: FIELDS renamed, then the extras as given.
        data = {
            "time": self.formatTime(record),
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.msg,
        }
        for field in ACCESS_FIELDS:
            data[field] = attrs[field]
        try:
            line = orjson.dumps(data).decode()
        except TypeError:  # a value orjson does not write (a filter replaced one): the generic path
            return None
        # orjson writes non-ASCII text as is; the generic path escapes it (a percent-encoded path).
        return line if line.isascii() else self.jsonify_log_record(data)


def json_formatter() -> JsonFormatter:
    """The formatter of every line: one JSON object per record."""
    return JsonLineFormatter()


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


def log_request(response: Response, facts: RequestFacts) -> None:
    """A reader of ``request_context.finish``: write the request's one log line."""
    if not log.isEnabledFor(logging.INFO):
        return
    req = request._get_current_object()  # one context look-up for both attributes
    result = facts.inference
    extra = {
        "request_id": facts.request_id,
        "method": req.method,
        "path": req.path,
        "status": response.status_code,
        "latency_ms": round(facts.elapsed * 1000, 3),
        "model": g.get("model_name"),  # which named model answered, and as what (mldeploy/rollout)
        "model_role": g.get("model_role"),
        "model_version": result.version if result else None,
        "rows": len(result.rows) if result else None,
        _ACCESS_MARK: True,
    }
    # Logger.info's path without its search of the stack for the caller's file and line, which
    # no line shows: the same record otherwise, through the same level, filters and handlers.
    log.handle(log.makeRecord(ACCESS_LOGGER, logging.INFO, _NO_FILE, 0, REQUEST_MESSAGE, (), None, extra=extra))
