"""What a prediction may carry beyond its class and probabilities: ``Warnings`` for features
outside their training range (always checked), and an ``Explanation`` (on ``?explain=true``).

Kept out of the resource so the plain /predict path stays one call: :func:`annotate`.
"""

from __future__ import annotations

from flask import Request

from mldeploy.contract import EXPLANATION, WARNINGS
from mldeploy.http import metrics
from modeler.errors import FieldError, InvalidInput
from modeler.modeler import Inference
from modeler.ranges import RangeWarning

EXPLAIN = "explain"
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


def annotate(result: Inference, predictions: list, explain: bool, warnings: dict[int, list[RangeWarning]]) -> None:
    """Add ``Warnings`` (only when some feature is out of range: ``result.out_of_range()``) and, if
    asked, ``Explanation`` to each prediction dict of ``result``, in place; only the predictions
    that ``warnings`` and ``explain`` touch must be dicts. Out-of-range values are counted in
    Prometheus (``mldeploy_out_of_range_total``)."""
    if warnings:
        metrics.count_out_of_range(w.field for found in warnings.values() for w in found)
        for row, found in warnings.items():
            predictions[row][WARNINGS] = [w.as_dict() for w in found]
    if explain:
        for prediction, explanation in zip(predictions, result.explanations(), strict=True):
            prediction[EXPLANATION] = explanation.as_dict()
