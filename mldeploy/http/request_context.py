"""What one request did, kept on ``flask.g`` for the access log and the metrics to read after it.

Resources and the error mapping note facts here; they never log or count themselves, so the
access log and the metrics stay one line each and cannot disagree.
"""

from __future__ import annotations

import re
import time
import uuid

from flask import g, request

from modeler.modeler import Inference

REQUEST_ID_HEADER = "X-Request-ID"
# A client's id is echoed only when it is short and plain: it lands in logs and headers.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def begin() -> None:
    """``before_request``: start the clock and settle the request id."""
    g.started = time.perf_counter()
    given = request.headers.get(REQUEST_ID_HEADER, "")
    g.request_id = given if REQUEST_ID_PATTERN.fullmatch(given) else uuid.uuid4().hex
    g.inference = None
    g.error = None


def note_inference(result: Inference) -> None:
    """Remember the version, rows and labels of this request's prediction."""
    g.inference = result


def note_error(exc: BaseException) -> None:
    """Remember the exception this request was answered with."""
    g.error = exc


def request_id() -> str | None:
    """The current request's id."""
    return g.get("request_id")


def elapsed_seconds() -> float:
    """Seconds since :func:`begin`."""
    return time.perf_counter() - g.get("started", time.perf_counter())


def inference() -> Inference | None:
    """The prediction made by this request, if any."""
    return g.get("inference")


def error() -> BaseException | None:
    """The exception this request was answered with, if any."""
    return g.get("error")
