"""What one request did, kept in its WSGI environ for the access log and the metrics to read after it.

Resources and the error mapping note facts here; they never log or count themselves, so the
access log and the metrics stay one line each and cannot disagree. :func:`init_app` registers the
request's two hooks: :func:`begin` first of all, and one ``after_request`` hook that reads the
clock once and hands the answer and the facts to each reader in turn (the security headers, the
prediction log, the metrics, then the log line), so that all carry the same latency.

The facts live in one object in the request's environ, not on ``g``, and it holds the request
object itself: every attribute read through one of Flask's context proxies (``g.x``,
``request.x``) costs about 2 µs (the proxy first fails a normal look-up, which builds an
``AttributeError``), and a request read its facts a dozen times. The readers share one Flask hook
for the same reason: Flask checks each hook for a coroutine on every call.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence

from flask import Flask, Request, Response, has_request_context, request

from mldeploy.monitoring.records import new_request_id
from modeler.modeler import Inference

REQUEST_ID_HEADER = "X-Request-ID"
# The same header as the WSGI environ names it: read there, it skips werkzeug's header lookup.
REQUEST_ID_ENVIRON = "HTTP_" + REQUEST_ID_HEADER.upper().replace("-", "_")
# A client's id is echoed only when it is short and plain: it lands in logs and headers.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# The app.extensions key of the readers' list.
READERS = "mldeploy_readers"
# The WSGI environ key that holds the current request's facts.
FACTS = "mldeploy.request"


class RequestFacts:
    """The current request (Flask's object, not the proxy), its id, its clock, and what it did."""

    __slots__ = ("elapsed", "error", "inference", "model_name", "model_role", "request", "request_id", "started")

    def __init__(self, started: float, request_id: str | None, req: Request) -> None:
        self.started = started
        self.request_id = request_id
        self.request = req
        self.inference: Inference | None = None
        self.error: BaseException | None = None
        self.elapsed: float | None = None  # set once, when the answer is ready
        # Which named model answered, and as what (mldeploy/rollout): None for other routes.
        self.model_name: str | None = None
        self.model_role: str | None = None


Reader = Callable[[Response, RequestFacts], None]


def begin() -> None:
    """``before_request``: start the clock and settle the request id."""
    started = time.perf_counter()
    req = request._get_current_object()  # the one proxy look-up of the request's start
    environ = req.environ
    given = environ.get(REQUEST_ID_ENVIRON)
    rid = given if given and REQUEST_ID_PATTERN.fullmatch(given) else new_request_id()
    environ[FACTS] = RequestFacts(started, rid, req)


def facts() -> RequestFacts:
    """The current request's facts (an empty set, timed from now, if :func:`begin` did not run)."""
    req = request._get_current_object()
    found = req.environ.get(FACTS)
    if found is None:
        found = req.environ[FACTS] = RequestFacts(time.perf_counter(), None, req)
    return found


def _found() -> RequestFacts | None:
    return request._get_current_object().environ.get(FACTS)


def note_inference(result: Inference) -> None:
    """Remember the version, rows and labels of this request's prediction."""
    facts().inference = result


def note_error(exc: BaseException) -> None:
    """Remember the exception this request was answered with."""
    facts().error = exc


def note_model(name: str, role: str) -> None:
    """Remember which named model answered, and as what (outside a request: nothing to note)."""
    if has_request_context():
        found = facts()
        found.model_name, found.model_role = name, role


def request_id() -> str | None:
    """The current request's id."""
    found = _found()
    return found.request_id if found is not None else None


def elapsed_seconds() -> float:
    """Seconds from :func:`begin` to the answer (to now while the request runs)."""
    found = facts()
    return found.elapsed if found.elapsed is not None else time.perf_counter() - found.started


def inference() -> Inference | None:
    """The prediction made by this request, if any."""
    found = _found()
    return found.inference if found is not None else None


def error() -> BaseException | None:
    """The exception this request was answered with, if any."""
    found = _found()
    return found.error if found is not None else None


def finish(response: Response, readers: Sequence[Reader]) -> Response:
    """``after_request``: stop the clock (its one read), echo the request id, then let each
    reader see the answer and the facts."""
    found = facts()
    found.elapsed = time.perf_counter() - found.started
    if found.request_id:
        # add, not set: nothing else sets this header, and set would search the list first.
        response.headers.add(REQUEST_ID_HEADER, found.request_id)
    for read in readers:
        read(response, found)
    return response


def init_app(app: Flask, readers: Sequence[Reader]) -> None:
    """Give each request an id and a clock first thing; after it, hand the answer to ``readers``
    in order (registered first, so that this hook runs after every other ``after_request``).
    The list of readers is kept in ``app.extensions`` (bench/request_parts.py leaves each out)."""
    readers = app.extensions[READERS] = list(readers)
    app.before_request(begin)
    app.after_request(lambda response: finish(response, readers))
