"""What one prediction becomes in the log: each row's inputs and the answer it got.

Built on the log's writer thread from the :class:`~modeler.inference.Inference` alone, so the
request pays for nothing but one append. The outputs are the answer the client was sent, by
the same code (:func:`mldeploy.api.answers.predict_answer`), without what is added around the
model's own answer (the echo, the version, warnings, explanations): whatever a model kind answers
(``Class`` and ``Probabilities``, or ``Prediction``) is logged as it is answered, for ``/predict``,
``/v2`` and the Python API alike. The inputs are each row's validated values by feature name, as
``/predict`` echoes a single row's ``Input``.
"""

from __future__ import annotations

from mldeploy.api.answers import predict_answer
from mldeploy.contract import EXPLANATION, INPUT, MODEL_VERSION, PREDICTIONS, WARNINGS
from modeler.inference import Inference

# Keys of a single row's answer that are not the model's output.
NOT_OUTPUTS = frozenset({INPUT, MODEL_VERSION, WARNINGS, EXPLANATION})


def answered_rows(result: Inference) -> tuple[list[dict], list[object]]:
    """``(inputs, outputs)`` of every row of ``result``, in row order: dicts by field name, and
    answers as dicts (or the JSON fragments the HTTP answer was written with)."""
    answer = predict_answer(result, warnings={}, serialised=True)
    if result.single:
        return [answer[INPUT]], [{k: v for k, v in answer.items() if k not in NOT_OUTPUTS}]
    features = result.features
    return [dict(zip(features, row, strict=True)) for row in result.rows], answer[PREDICTIONS]
