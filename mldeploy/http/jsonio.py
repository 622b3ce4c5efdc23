"""Fast JSON both ways: orjson parses request bodies and writes every Flask-RESTful response.

Flask-RESTful writes responses with its own ``output_json`` (stdlib json), not ``app.json``, so
:func:`output_json` is registered with ``api.representation("application/json")``. Bodies that
orjson rejects but Python's json reads (the NaN and Infinity literals, 1e999, lone surrogates,
UTF-16) are read again by the stdlib parser, so validation can name the field that holds them.

A response may hold pre-serialised ``orjson.Fragment`` values (see ``mldeploy.api.answers``),
which orjson copies verbatim.
"""

from __future__ import annotations

import gc
from collections.abc import Mapping

import orjson
from flask import Response, current_app

from mldeploy.http import json_limits

DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


def loads(raw: bytes) -> object:
    """Parse a JSON body: orjson first, the stdlib for what only the stdlib accepts, nested at
    most ``json_limits.MAX_DEPTH`` levels (see :mod:`mldeploy.http.json_limits`).

    Raises ValueError (``json_limits.TooDeep``, or UnicodeDecodeError) when it cannot be read.

    No cyclic garbage collection runs meanwhile (unless it was off already): a parsed JSON
    document holds no reference cycles, so a collection run while parsing one can free nothing;
    yet the thousands of lists of a large batch trigger dozens of them, which doubled the parse
    time of a 10,000-row column-wise body. (A try/finally, not a context manager: that costs
    three times the parse of one row.)
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        return json_limits.loads(raw)
    finally:
        if enabled:
            gc.enable()


def dumps(data: object) -> bytes:
    """``data`` as compact JSON bytes."""
    return orjson.dumps(data, option=DUMP_OPTIONS)


def output_json(data: object, code: int, headers: Mapping[str, str] | None = None) -> Response:
    """Flask-RESTful representation for ``application/json``, written by orjson."""
    return current_app.response_class(dumps(data), status=code, headers=headers, mimetype="application/json")
