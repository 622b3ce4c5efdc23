"""Reading a /predict body: JSON only, then one of the accepted shapes.

Shapes:  ``{"sepal_length": ..., ...}`` (one row), ``{"features": [numbers]}`` (one row in
feature order), ``[{...}, ...]`` (a batch), ``{"instances": [{...} or [numbers], ...]}``
(a batch) and ``{"columns": [names], "data": [[numbers], ...]}`` (a batch, column-wise).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from flask import Request
from werkzeug.exceptions import UnsupportedMediaType

from mldeploy.http import jsonio
from modeler.errors import MISSING, UNKNOWN, FieldError, InvalidInput, TooManyRows
from modeler.validation import EMPTY, NOT_A_ROW, Columns

INSTANCES = "instances"
FEATURES = "features"
COLUMNS = "columns"
DATA = "data"
MALFORMED = "Malformed JSON"


def read_json(request: Request) -> object:
    """The request body parsed as JSON; 415 when it is not JSON, 400 when it does not parse."""
    return parse_json(read_body(request))


def read_body(request: Request) -> bytes:
    """The request body's bytes; 415 when it is not sent as JSON."""
    if not request.is_json:
        raise UnsupportedMediaType(
            f"Send the body as JSON with Content-Type: application/json (got {request.mimetype or 'none'})"
        )
    return request.get_data(cache=False)  # over MAX_CONTENT_LENGTH this raises 413


def parse_json(raw: bytes) -> object:
    """A JSON body parsed (no request needed: the command line reads its rows with this too);
    400 when it is empty or does not parse."""
    if not raw.strip():
        raise InvalidInput([FieldError(None, None, "empty body: send a JSON object")], MALFORMED)
    try:
        return jsonio.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput([FieldError(None, None, f"malformed JSON: {exc}")], MALFORMED) from exc


def _unknown_keys(body: Mapping, *allowed: str) -> list[FieldError]:
    return [FieldError(None, str(k), UNKNOWN) for k in body if k not in allowed]


def _columns(body: dict, max_rows: int) -> Columns:
    errors = _unknown_keys(body, COLUMNS, DATA)
    names, data = body.get(COLUMNS), body.get(DATA)
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        errors.append(FieldError(None, COLUMNS, "must be a non-empty list of field names"))
    if not isinstance(data, list):
        errors.append(FieldError(None, DATA, "must be a list of rows, each a list of numbers in the order of columns"))
    if errors:
        raise InvalidInput(errors)
    _check_batch(data, max_rows, allowed=(list,), problem="not a list of numbers")
    return Columns(names, data)


def check_row_limit(rows: int, max_rows: int) -> None:
    """413 (TooManyRows) when a batch holds more than MLDEPLOY_MAX_BATCH_ROWS rows."""
    if rows > max_rows:
        raise TooManyRows(
            [FieldError(None, None, f"{rows} rows is over the limit of {max_rows} (MLDEPLOY_MAX_BATCH_ROWS)")],
            "Batch too large",
        )


def _check_batch(
    rows: list, max_rows: int, *, allowed: tuple[type, ...] = (dict,), problem: str = "not an object"
) -> None:
    if not rows:
        raise InvalidInput([FieldError(None, None, EMPTY)])
    check_row_limit(len(rows), max_rows)
    if set(map(type, rows)).issubset(allowed):  # JSON gives exact dicts and lists
        return
    raise InvalidInput([FieldError(i, None, problem) for i, row in enumerate(rows) if not isinstance(row, allowed)])


def rows_from_body(body: object, max_rows: int) -> object:
    """The rows to score, in a shape :func:`modeler.validation.to_rows` understands (a parsed
    body in, no request needed: HTTP ``/predict`` and ``python -m mldeploy predict`` share it).

    A one-row shape gives a dict or a flat list (scored as one row); a batch gives a list of rows,
    or :class:`~modeler.validation.Columns` for the column-wise form.
    """
    if isinstance(body, dict):
        if COLUMNS in body:
            return _columns(body, max_rows)
        if INSTANCES in body:
            errors = _unknown_keys(body, INSTANCES)
            rows = body[INSTANCES]
            if not isinstance(rows, list):
                errors.append(FieldError(None, INSTANCES, "must be a list of rows"))
            if errors:
                raise InvalidInput(errors)
            _check_batch(rows, max_rows, allowed=(dict, list), problem=NOT_A_ROW)
            return rows
        if FEATURES in body:
            errors = _unknown_keys(body, FEATURES)
            values = body[FEATURES]
            if not isinstance(values, list) or not values or any(isinstance(v, (list, dict)) for v in values):
                errors.append(FieldError(None, FEATURES, "must be a non-empty list of numbers in feature order"))
            if errors:
                raise InvalidInput(errors)
            return values
        return body
    if isinstance(body, list):
        _check_batch(body, max_rows)
        return body
    raise InvalidInput(
        [FieldError(None, None, f"the body must be a JSON object or an array of objects, not {type(body).__name__}")]
    )


def read_object(request: Request, allowed: Sequence[str], required: Sequence[str] = ()) -> dict:
    """A JSON object body holding only ``allowed`` keys (400 naming each unknown or missing one).

    With nothing required, no body at all (even without a Content-Type) stands for ``{}``; a body
    of blanks is not JSON (400), as anywhere else.
    """
    if not required and not request.get_data():
        return {}
    body = read_json(request)
    if not isinstance(body, dict):
        raise InvalidInput([FieldError(None, None, f"the body must be a JSON object, not {type(body).__name__}")])
    errors = _unknown_keys(body, *allowed)
    errors += [FieldError(None, k, MISSING) for k in required if k not in body]
    if errors:
        raise InvalidInput(errors)
    return body
