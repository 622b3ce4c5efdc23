"""The one place that turns exceptions into HTTP answers: JSON with a ``message``, always
(``{"error": "..."}`` on the Open Inference Protocol's /v2 routes, as that protocol requires).

Flask-RESTful sends exceptions raised on its routes to ``Api.handle_error`` and, outside
testing/debug mode, never consults ``@app.errorhandler`` for them; so the mapping lives in
:func:`error_response` and both ``JsonApi.handle_error`` and the app-wide handler call it.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, current_app, request
from flask_restful import Api
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound, RequestEntityTooLarge, TooManyRequests

from mldeploy.api.v2.protocol import is_v2
from mldeploy.http import request_context
from mldeploy.monitoring.errors import MonitoringConflict, NotLogged
from mldeploy.monitoring.store import LogDatabaseError
from mldeploy.rollout.state import RolloutConflict
from modeler.errors import (
    DataError,
    InvalidInput,
    ModelerError,
    ModelNotReady,
    ReadOnlyModelDir,
    SchemaChange,
    TooManyRows,
    VersionNotFound,
    VersionUnusable,
)

log = logging.getLogger(__name__)

# Headers of an HTTP exception worth keeping in our JSON answer (its own Content-Type is HTML).
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


def _http_message(exc: HTTPException) -> str:
    if isinstance(exc, NotFound):
        return f"Not found: no route for {request.method} {request.path}"
    if isinstance(exc, MethodNotAllowed):
        allowed = ", ".join(sorted(exc.valid_methods or []))
        return f"Method {request.method} not allowed on {request.path}; allowed: {allowed}"
    if isinstance(exc, RequestEntityTooLarge):
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        return f"Request body too large: the limit is {limit} bytes (MLDEPLOY_MAX_CONTENT_LENGTH)"
    if isinstance(exc, TooManyRequests):
        # flask-limiter's description is the limit that was hit, e.g. "10 per 1 minute".
        return f"Rate limit exceeded ({exc.description}, MLDEPLOY_RATE_LIMIT): retry after Retry-After seconds"
    return exc.description or exc.name


def error_response(exc: BaseException) -> Response:
    """The JSON response for any exception raised while handling a request.

    A domain error's message is for the client and names no server path; the path it concerns
    goes to this server's log line instead.
    """
    request_context.note_error(exc)
    if isinstance(exc, ModelerError) and exc.path:
        log.warning("%s %s answered with: %s", request.method, request.path, exc.detail())
    headers: dict[str, str] = {}
    body: dict[str, object]
    if isinstance(exc, InvalidInput):
        status = 413 if isinstance(exc, TooManyRows) else 400
        body = {"message": exc.message, "errors": [e.as_dict() for e in exc.errors]}
    elif isinstance(exc, DataError):
        status, body = 400, {"message": str(exc)}
    elif isinstance(exc, VersionNotFound):
        status, body = 404, {"message": str(exc)}
    elif isinstance(exc, SchemaChange):
        # Clients would have to change their fields: refused unless the request says it means it.
        status, body = 409, {"message": str(exc), "errors": [e.as_dict() for e in exc.errors]}
    elif isinstance(exc, (ReadOnlyModelDir, VersionUnusable, RolloutConflict)):
        # The request is fine, the model directory's state refuses it; serving goes on.
        status, body = 409, {"message": str(exc)}
    elif isinstance(exc, NotLogged):
        status, body = 404, {"message": str(exc), "errors": [e.as_dict() for e in exc.errors]}
    elif isinstance(exc, MonitoringConflict):
        status, body = 409, {"message": str(exc)}
    elif isinstance(exc, LogDatabaseError):
        log.warning("%s %s: %s", request.method, request.path, exc)  # the database's name is not for clients
        status, body = 503, {"message": "The prediction log's database is unavailable; retry later"}
        headers["Retry-After"] = str(current_app.config.get("RETRY_AFTER", 1))
    elif isinstance(exc, ModelNotReady):
        status, body = 503, {"message": f"Model not ready: {exc}"}
        headers["Retry-After"] = str(current_app.config.get("RETRY_AFTER", 1))
    elif isinstance(exc, HTTPException):
        status, body = exc.code or 500, {"message": _http_message(exc)}
        original = exc.get_response().headers
        headers.update({k: original[k] for k in KEPT_HEADERS if k in original})
    else:
        # A bug of ours: log it with its traceback, but never send the traceback.
        log.exception("unhandled error on %s %s", request.method, request.path)
        status, body = 500, {"message": "Internal server error"}
    if is_v2(request.path):
        # The Open Inference Protocol's error shape: one message, the details written out in it.
        body = {"error": str(exc) if isinstance(exc, InvalidInput) else body["message"]}
    response = current_app.json.response(body)
    response.status_code = status
    response.headers.update(headers)
    return response


class JsonApi(Api):
    """``flask_restful.Api`` whose errors all go through :func:`error_response`."""

    def handle_error(self, e: Exception) -> Response:
        return error_response(e)


def init_app(app: Flask) -> None:
    """JSON errors for everything outside Flask-RESTful's routes too."""
    app.register_error_handler(HTTPException, error_response)
    app.register_error_handler(Exception, error_response)
