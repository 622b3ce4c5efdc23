"""Structured logs: one compact JSON object per line on stderr, one line per request with its id.

A request's line carries the id (the client's ``X-Request-ID`` or a new one, echoed in the
response), method, path, status, latency, model version and row count. Feature values are
never logged: they may be personal data, and they would make the lines unbounded.

Every record goes through python-json-logger's formatter, except a request's own line: it is
written on every request, so :class:`JsonLineFormatter` builds it directly from its known fields
with orjson (about a tenth of the generic walk of the record), the same text the generic path
writes for it. And while logging is as :func:`configure_logging` left it (its one handler on the
root logger, no filter anywhere, nothing added to the access logger), :func:`log_request` writes
that line to the handler's stream itself, without making a record and walking the loggers and
handlers for it: about two thirds of the line's cost, the same text on the same stream under the
handler's lock. Any other set-up (a test's capture, an application's own handlers) gets the
record, as any logger would.
"""

from __future__ import annotations

import functools
import json
import logging
import logging.config
import os
import time

import orjson
from flask import Response
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
        return self._time_text(record.created, record.msecs)

    def _time_text(self, created: float, msecs: float) -> str:
        second, text = self._second
        if int(created) != second:
            second = int(created)
            text = time.strftime(self.default_time_format, self.converter(created))
            self._second = (second, text)
        return self.default_msec_format % (text, msecs)

    def _access_line(self, record: logging.LogRecord, attrs: dict) -> str | None:
        return self.request_line(record.created, record.msecs, record.process, {f: attrs[f] for f in ACCESS_FIELDS})

    def request_line(self, created: float, msecs: float, pid: int | None, fields: dict) -> str | None:
        """A request's line from its fields (ACCESS_FIELDS, in order), or None when only the
        generic path can write it."""
        # The keys in the generic path's order: FIELDS renamed, then the extras as given.
        data = {
            "time": self._time_text(created, msecs),
            "level": "INFO",
            "logger": ACCESS_LOGGER,
            "pid": pid,
            "message": REQUEST_MESSAGE,
            **fields,
        }
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
    global _direct
    logging.config.dictConfig(logging_config(level))
    handlers = logging.root.handlers
    found = handlers[0] if len(handlers) == 1 else None
    mine = isinstance(found, logging.StreamHandler) and isinstance(found.formatter, JsonLineFormatter)
    _direct = found if mine else None


# The handler configure_logging put on the root logger (None until it ran).
_direct: logging.StreamHandler | None = None


def _direct_handler() -> logging.StreamHandler | None:
    """The handler a request's line may be written to directly: configure_logging's, while it is
    still the only place the record would go and nothing would filter or change it."""
    handler = _direct
    if handler is None:
        return None
    root = logging.root
    if len(root.handlers) != 1 or root.handlers[0] is not handler or root.filters or handler.filters:
        return None
    if log.handlers or log.filters or not log.propagate or handler.level > logging.INFO:
        return None
    return handler


def _write_direct(handler: logging.StreamHandler, fields: dict) -> bool:
    """Write a request's line to ``handler``'s stream as its emit would; False when only the
    generic path can write it (the caller then logs the record the usual way)."""
    created = time.time()
    msecs = int((created - int(created)) * 1000) + 0.0  # as a LogRecord computes it
    line = handler.formatter.request_line(created, msecs, _pid, fields)
    if line is None:
        return False
    handler.acquire()
    try:
        handler.stream.write(line + handler.terminator)
        handler.flush()
    except Exception:  # reported as emit reports it; not written again, lest it be written twice
        fields = {"name": ACCESS_LOGGER, "msg": REQUEST_MESSAGE, "levelno": logging.INFO, "levelname": "INFO"}
        handler.handleError(logging.makeLogRecord(fields))
    finally:
        handler.release()
    return True


# This process's id, as a LogRecord's ``process``: os.getpid() is a system call (about 0.2 µs
# here) on every request.
_pid = os.getpid()


def _note_pid() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_note_pid)


def log_request(response: Response, facts: RequestFacts) -> None:
    """A reader of ``request_context.finish``: write the request's one log line."""
    if not log.isEnabledFor(logging.INFO):
        return
    req = facts.request
    result = facts.inference
    fields = {
        "request_id": facts.request_id,
        "method": req.method,
        "path": req.path,
        "status": response.status_code,
        "latency_ms": round(facts.elapsed * 1000, 3),
        "model": facts.model_name,  # which named model answered, and as what (mldeploy/rollout)
        "model_role": facts.model_role,
        "model_version": result.version if result else None,
        "rows": len(result.rows) if result else None,
    }
    handler = _direct_handler()
    if handler is not None and _write_direct(handler, fields):
        return
    extra = {**fields, _ACCESS_MARK: True}
    # Logger.info's path without its search of the stack for the caller's file and line, which
    # no line shows: the same record otherwise, through the same level, filters and handlers.
    log.handle(log.makeRecord(ACCESS_LOGGER, logging.INFO, _NO_FILE, 0, REQUEST_MESSAGE, (), None, extra=extra))
