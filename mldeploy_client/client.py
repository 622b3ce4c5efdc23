"""A Python client of the mldeploy HTTP API, for scripts and notebooks.

It needs only ``requests`` and ``pandas``: no Flask, no scikit-learn. ::

    from mldeploy_client import Client

    with Client("http://localhost:5000") as client:
        client.predict({"sepal_length": 5.0, "sepal_width": 3.2, "petal_length": 1.5, "petal_width": 0.3})
        client.predict_many(frame)       # a DataFrame in, a DataFrame out (same index)

One ``requests.Session`` keeps connections alive between calls. Connection failures and answers
503 (model not ready) and 429 (rate limited) are retried with exponential backoff, honouring the
server's ``Retry-After``; other errors are raised at once as typed exceptions
(:class:`InvalidRequest` carries the server's field errors).
"""

from __future__ import annotations

import email.utils
import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple
from urllib.parse import quote

import numpy as np
import pandas as pd
import requests

from mldeploy.contract import (
    CLASS,
    ERRORS,
    FIELD,
    MESSAGE,
    MODEL_VERSION,
    PREDICTION,
    PREDICTIONS,
    PROBABILITIES,
    PROBLEM,
    ROW,
)

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 10.0
DEFAULT_CHUNK_SIZE = 1000
# Answers worth trying again: the model is not ready yet, or we are asked to slow down.
RETRY_STATUSES = frozenset({429, 503})
USER_AGENT = "mldeploy-client/1"


# -- errors ---------------------------------------------------------------------------------------


class FieldError(NamedTuple):
    """One entry of a 400's ``errors`` list: the row (None for the whole input), field and problem."""

    row: int | None
    field: str | None
    problem: str

    def __str__(self) -> str:
        where = [f"row {self.row}"] if self.row is not None else []
        if self.field is not None:
            where.append(repr(self.field))
        return f"{' '.join(where) or 'input'}: {self.problem}"


class ApiError(Exception):
    """An error answer (or none at all) from the service. ``status`` is the HTTP status (None when
    the server could not be reached), ``message`` the server's message, ``body`` its JSON body."""

    def __init__(
        self, message: str, status: int | None = None, body: object = None, errors: Sequence[FieldError] = ()
    ) -> None:
        self.message = message
        self.status = status
        self.body = body
        self.errors: list[FieldError] = list(errors)
        shown = "; ".join(str(e) for e in self.errors[:5])
        more = f" (+{len(self.errors) - 5} more)" if len(self.errors) > 5 else ""
        prefix = f"{status} " if status is not None else ""
        super().__init__(f"{prefix}{message}" + (f": {shown}{more}" if shown else ""))


class InvalidRequest(ApiError):
    """400/413/415/422: the request itself is wrong; ``errors`` names each bad row and field."""


class AuthenticationError(ApiError):
    """401/403: a missing or wrong API key."""


class NotFound(ApiError):
    """404: no such path (or model version)."""


class RateLimited(ApiError):
    """429, still after every retry."""


class ServiceUnavailable(ApiError):
    """503 (the model cannot be made ready), still after every retry."""


class ServerError(ApiError):
    """Another 5xx: a fault on the server's side."""


class ConnectionFailed(ApiError):
    """The server could not be reached (or did not answer in time), after every retry."""


ERRORS_BY_STATUS: dict[int, type[ApiError]] = {
    400: InvalidRequest,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFound,
    413: InvalidRequest,
    415: InvalidRequest,
    422: InvalidRequest,
    429: RateLimited,
    503: ServiceUnavailable,
}


def error_from(response: requests.Response) -> ApiError:
    """The typed exception for an error answer, with the server's message and field errors."""
    try:
        body = response.json()
    except ValueError:
        body = {MESSAGE: response.text[:500] or response.reason}
    message = str(body.get(MESSAGE, response.reason)) if isinstance(body, dict) else str(body)
    errors = []
    if isinstance(body, dict) and isinstance(body.get(ERRORS), list):
        errors = [
            FieldError(e.get(ROW), e.get(FIELD), str(e.get(PROBLEM))) for e in body[ERRORS] if isinstance(e, dict)
        ]
    status = response.status_code
    kind = ERRORS_BY_STATUS.get(status, ServerError if status >= 500 else ApiError)
    return kind(message, status, body, errors)


def retry_after(response: requests.Response) -> float | None:
    """Seconds the server asked us to wait (``Retry-After`` in seconds or as an HTTP date)."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


# -- the client ------------------------------------------------------------------------------------


@dataclass
class Client:
    """A client of one mldeploy server at ``url`` (e.g. ``http://localhost:5000``).

    ``api_key`` is sent as ``Authorization: Bearer <key>``. ``timeout`` (seconds, or a
    ``(connect, read)`` pair) bounds each attempt. Up to ``retries`` further attempts follow a
    connection failure, a 503 or a 429, after ``Retry-After`` when the server sends one, else
    after a backoff of ``backoff * 2**attempt`` seconds (with jitter, at most ``max_backoff``).
    A ``Retry-After`` over ``max_retry_after`` is not waited for: the error is raised.
    """

    url: str
    api_key: str | None = None
    timeout: float | tuple[float, float] = DEFAULT_TIMEOUT
    retries: int = 6
    backoff: float = 0.25
    max_backoff: float = 8.0
    max_retry_after: float = 60.0
    session: requests.Session = field(default_factory=requests.Session, repr=False)
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self.session.headers.setdefault("User-Agent", USER_AGENT)
        if self.api_key:
            self.session.headers["Authorization"] = f"Bearer {self.api_key}"

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transport --------------------------------------------------------------------------------

    def _delay(self, attempt: int) -> float:
        ceiling = min(self.max_backoff, self.backoff * 2**attempt)
        return random.uniform(ceiling / 2, ceiling)  # jitter: many clients do not retry in step

    def _send(self, method: str, path: str, body: object = None, *, retry: bool = True) -> requests.Response:
        """One call with retries; returns the final response (any status)."""
        url = self.url + path
        # Serialised here because requests refuses NaN and infinities; sent as JSON's NaN/Infinity
        # literals, the server names the row and field ("not finite") instead of a vague failure.
        data = None if body is None else json.dumps(body, allow_nan=True, default=_json_value).encode()
        headers = {"Content-Type": "application/json"} if data is not None else None
        for attempt in range(self.retries + 1):
            last = attempt == self.retries or not retry
            try:
                response = self.session.request(method, url, data=data, headers=headers, timeout=self.timeout)
            except requests.ConnectionError as exc:  # refused, reset, DNS, connect timeout
                if last:
                    raise ConnectionFailed(f"cannot reach {url}: {exc}") from exc
                delay, reason = self._delay(attempt), type(exc).__name__
            except requests.Timeout as exc:
                # The server has the request but is slow: asking again would only add load.
                raise ConnectionFailed(f"no answer from {url} within {self.timeout} s") from exc
            else:
                if response.status_code not in RETRY_STATUSES or last:
                    return response
                asked = retry_after(response)
                if asked is not None and asked > self.max_retry_after:
                    return response
                delay, reason = (asked if asked is not None else self._delay(attempt)), str(response.status_code)
            log.warning(
                "%s %s: %s; retrying in %.2f s (retry %d of %d)", method, url, reason, delay, attempt + 1, self.retries
            )
            self.sleep(delay)
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _json(self, method: str, path: str, body: object = None) -> dict:
        response = self._send(method, path, body)
        if not response.ok:
            raise error_from(response)
        return response.json()

    # -- the API ---------------------------------------------------------------------------------

    def health(self) -> dict:
        """``GET /health``: ``{"status": "ok"}`` while the server process runs."""
        return self._json("GET", "/health")

    def ready(self) -> dict:
        """``GET /ready``: ``{"status": "ready", "ModelVersion": ...}``, or ``{"status": "not ready",
        "message": ...}`` while the model is loading (not an error, and not retried)."""
        response = self._send("GET", "/ready", retry=False)
        if response.status_code in (200, 503):
            return response.json()
        raise error_from(response)

    def wait_until_ready(self, timeout: float = 60.0, interval: float = 0.5) -> dict:
        """Poll :meth:`ready` until the model is ready (a server still starting is waited for too)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                state = self.ready()
            except ConnectionFailed:
                if time.monotonic() >= deadline:
                    raise
            else:
                if state.get("status") == "ready":
                    return state
                if time.monotonic() >= deadline:
                    raise ServiceUnavailable(f"not ready after {timeout:g} s: {state.get('message')}", 503, state)
            self.sleep(interval)

    def model(self) -> dict:
        """``GET /model``: the served version's metadata (features, classes, holdout, ...)."""
        return self._json("GET", "/model")

    def feedback(
        self, request_id: str | Sequence[Mapping[str, object]], actual: object = None, row: int | None = None
    ) -> dict:
        """``POST /feedback``: the true answer of a logged prediction, by the ``X-Request-ID`` it
        was answered with (and its ``row`` in a batch), or a list of ``{"request_id", "actual",
        "row"}``. Returns ``{"recorded", "replaced", "rows"}``; a second label for a row replaces
        the first. An unknown request id raises :class:`NotFound`, a label the model does not know
        :class:`InvalidRequest`."""
        if isinstance(request_id, str):
            body: object = {"request_id": request_id, "actual": actual, **({} if row is None else {"row": row})}
        else:
            body = [dict(item) for item in request_id]
        return self._json("POST", "/feedback", body)

    def models(self) -> dict:
        """``GET /models``: every model of the server, its current version and its rollout."""
        return self._json("GET", "/models")

    def predict_with(
        self, name: str, row: Mapping[str, object] | Sequence[float] | pd.Series, version: str | None = None
    ) -> dict:
        """Score one row with model ``name`` (``/models/<name>/predict``), or with its saved
        ``version``, current or not (``/models/<name>/versions/<version>/predict``)."""
        if isinstance(row, pd.Series):
            row = row.to_dict()
        path = f"/models/{quote(name, safe='')}"
        if version is not None:
            path += f"/versions/{quote(version, safe='')}"
        return self._json("POST", path + "/predict", dict(row) if isinstance(row, Mapping) else {"features": row})

    def rollout_start(self, name: str, version: str, percent: float = 10.0, *, shadow: bool = False) -> dict:
        """Start a canary of saved ``version`` of model ``name`` (``percent`` of its requests), or
        a shadow (a copy of each request); the client's key must be the admin key."""
        body: dict[str, object] = {"version": version, "shadow": shadow}
        if not shadow:
            body["percent"] = percent
        return self._json("POST", f"/models/{quote(name, safe='')}/rollout/start", body)

    def rollout_status(self, name: str) -> dict:
        """Model ``name``'s last rollout and how candidate and baseline compare over it."""
        return self._json("GET", f"/models/{quote(name, safe='')}/rollout")

    def rollout_promote(self, name: str) -> dict:
        """Make the rollout's candidate the current version of model ``name`` (admin key)."""
        return self._json("POST", f"/models/{quote(name, safe='')}/rollout/promote", {})

    def rollout_abort(self, name: str, reason: str | None = None) -> dict:
        """End model ``name``'s rollout; its current version answers everything (admin key)."""
        return self._json("POST", f"/models/{quote(name, safe='')}/rollout/abort", {"reason": reason} if reason else {})

    def performance(self, window: int | str | None = None, version: str | None = None) -> dict:
        """``GET /model/performance``: live accuracy, per-class precision/recall/F1 and the confusion
        matrix (a regressor: MAE, RMSE, R²) over the last ``window`` labelled rows (or a span such as
        ``"1h"``), for ``version`` (default: the current one)."""
        return self._json("GET", "/model/performance" + _query(window=window, version=version))

    def drift(self, window: int | str | None = None, version: str | None = None) -> dict:
        """``GET /model/drift``: PSI, p-value and verdict per feature and for the predictions, over
        the last ``window`` logged rows (or a span such as ``"1h"``), for ``version``."""
        return self._json("GET", "/model/drift" + _query(window=window, version=version))

    def predict(self, row: Mapping[str, object] | Sequence[float] | pd.Series) -> dict:
        """Score one row: a mapping of field values (or a Series), or values in field order (sent
        as ``{"features": [...]}``, as for a model fitted on a bare array).

        Returns the server's answer: ``{"Class", "Input", "Probabilities", "ModelVersion"}`` from a
        classifier (no ``Probabilities`` when the model has none; ``Class`` in the label's own
        type), ``{"Prediction", "Input", "ModelVersion"}`` from a regressor; ``Warnings`` when a
        value was outside what the model saw in training.
        """
        if isinstance(row, pd.Series):
            row = row.to_dict()
        return self._json("POST", "/predict", dict(row) if isinstance(row, Mapping) else {"features": row})

    def predict_many(
        self,
        rows: pd.DataFrame | Sequence[Mapping[str, object] | Sequence[float]],
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        *,
        allow_errors: bool = False,
    ) -> pd.DataFrame | list[dict]:
        """Score many rows, ``chunk_size`` per request, in order.

        A DataFrame gives a DataFrame with its index: ``Class`` and one probability column per class
        (when the model has probabilities), or ``Prediction`` from a regressor, and ``ModelVersion``
        (per row: a version switch mid-way shows). A list of rows gives a list of the server's
        answers, each with its ``ModelVersion``.

        A bad row raises :class:`InvalidRequest` (row numbers count from the first row given,
        whatever the chunk), unless ``allow_errors``: then every good row is scored all the same
        (a chunk the server refuses is sent again without the rows it named) and each bad row
        keeps its place, with its :class:`FieldError` list in an ``errors`` column (None for good
        rows) and its answer columns empty (NaN); in a list, a bad row's entry is
        ``{"errors": [...]}``. Errors that name no row (e.g. a chunk over the server's row limit)
        still raise.
        """
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        frame = rows if isinstance(rows, pd.DataFrame) else None
        records = frame.to_dict(orient="records") if frame is not None else list(rows)
        answers: dict[int, dict] = {}
        errors: dict[int, list[FieldError]] = {}
        for start in range(0, len(records), chunk_size):
            positions = list(range(start, min(start + chunk_size, len(records))))
            self._predict_rows(records, positions, answers, errors if allow_errors else None)
        if frame is None:
            return [answers[i] if i in answers else {ERRORS: errors[i]} for i in range(len(records))]
        return _answers_frame(answers, frame.index, errors if allow_errors else None)

    def _predict_rows(
        self,
        records: list,
        positions: list[int],
        answers: dict[int, dict],
        errors: dict[int, list[FieldError]] | None,
    ) -> None:
        """Score ``records[i]`` for each ``i`` in ``positions`` (one request) into ``answers[i]``.

        The server refuses a whole batch for one bad row. With ``errors`` (a dict to fill), the
        rows it names go there with their problems and the rest is sent again, until the server
        takes what is left (each round drops at least one row); without, the refusal is raised.
        """
        while positions:
            try:
                body = self._json("POST", "/predict", {"instances": [records[i] for i in positions]})
            except InvalidRequest as exc:
                named = _rows_named(exc, len(positions))
                if errors is None or not named:
                    raise _renumbered(exc, positions) from None
                for e in _renumbered(exc, positions).errors:
                    errors.setdefault(e.row, []).append(e)
                positions = [p for i, p in enumerate(positions) if i not in named]
                continue
            version = body.get(MODEL_VERSION)
            answers.update(
                {p: {**a, MODEL_VERSION: version} for p, a in zip(positions, body[PREDICTIONS], strict=True)}
            )
            return


def _json_value(value: object) -> object:
    """``json.dumps``' fallback for what it cannot write itself: numpy scalars and arrays (as a
    DataFrame or array row holds them) become Python numbers and lists, any other mapping a dict.
    The only conversion the client makes; anything else is refused (TypeError), never guessed at."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"cannot send a {type(value).__name__} as JSON: {value!r:.80}")


def _rows_named(exc: InvalidRequest, rows: int) -> set[int]:
    """The rows of a request of ``rows`` rows that a 400 names, or an empty set when any of its
    errors names no row (or one outside the request): then no row alone is to blame."""
    if exc.status != 400 or not exc.errors:
        return set()
    named = {e.row for e in exc.errors}
    return named if all(isinstance(r, int) and 0 <= r < rows for r in named) else set()


def _renumbered(exc: InvalidRequest, positions: Sequence[int]) -> InvalidRequest:
    """``exc`` with each row number of the request turned into the row's position in the whole
    input (``positions[row]``), not in the chunk."""
    errors = [
        FieldError(
            positions[e.row] if isinstance(e.row, int) and 0 <= e.row < len(positions) else e.row, e.field, e.problem
        )
        for e in exc.errors
    ]
    return InvalidRequest(exc.message, exc.status, exc.body, errors)


def _answers_frame(
    answers: dict[int, dict], index: pd.Index, errors: dict[int, list[FieldError]] | None
) -> pd.DataFrame:
    """The answers as a DataFrame on the caller's ``index``: ``Class`` and one column per class
    (a classifier; the probability columns only when the model gives them) or ``Prediction`` (a
    regressor), then ``ModelVersion``, and with ``errors`` an ``errors`` column; a row without an
    answer is empty."""
    rows = [answers.get(i) for i in range(len(index))]
    regressor = any(a is not None and PREDICTION in a for a in rows)
    key = PREDICTION if regressor else CLASS
    table = pd.DataFrame({key: [a.get(key) if a else None for a in rows]}, index=index)
    if regressor:
        table[PREDICTION] = pd.to_numeric(table[PREDICTION])  # a failed row is NaN, as probabilities are
    parts = [table]
    if any(a is not None and PROBABILITIES in a for a in rows):
        parts.append(pd.DataFrame([a.get(PROBABILITIES, {}) if a else {} for a in rows], index=index))
    result = pd.concat(parts, axis=1).assign(**{MODEL_VERSION: [a[MODEL_VERSION] if a else None for a in rows]})
    if errors is not None:
        result[ERRORS] = pd.Series([errors.get(i) for i in range(len(index))], index=index, dtype=object)
    return result


def _query(**params: object) -> str:
    """``?name=value&...`` of the parameters that are set (URL-encoded), or nothing."""
    from urllib.parse import urlencode

    given = {k: str(v) for k, v in params.items() if v is not None}
    return "?" + urlencode(given) if given else ""
