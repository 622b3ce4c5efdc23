"""The ``explain`` query flag of ``/predict`` (``?explain=true`` asks for each row's
``Explanation``); the answer itself, ``Warnings`` and ``Explanation`` included, is built by
:mod:`mldeploy.api.answers`, the same for every surface."""

from __future__ import annotations

from flask import Request

from modeler.errors import FieldError, InvalidInput
from modeler.predictors.base import EXPLAIN_FIELD

EXPLAIN = EXPLAIN_FIELD
TRUE = frozenset({"", "1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})
NOT_A_FLAG = "must be true or false"


def explain_requested(request: Request) -> bool:
    """Whether the query asks for explanations (``?explain=true``); 400 for an unclear value."""
    if not request.query_string:  # the usual request: no parsing at all
        return False
    value = request.args.get(EXPLAIN)
    if value is None:
        return False
    value = value.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise InvalidInput([FieldError(None, EXPLAIN, NOT_A_FLAG)], "Invalid query parameter")
