"""What one prediction becomes in the log: its rows' inputs and the answers they got, packed
(:mod:`.packing`).

Built on the log's writer thread from the :class:`~modeler.inference.Inference` alone, so the
request pays for nothing but one append. The outputs are the answers the client was sent, by the
same code (:mod:`mldeploy.api.answers`), without what is added around the model's own answer
(the echo, the version, warnings, explanations): whatever a model kind answers (``Class`` and
``Probabilities``, or ``Prediction``) is logged as it is answered, for ``/predict``, ``/v2`` and
the Python API alike. The inputs are each row's validated values by feature name, as ``/predict``
echoes a single row's ``Input``.
"""

from __future__ import annotations

import numpy as np

from mldeploy.api.answers import answer_columns, entry_fragments, plain_rows, predict_answer
from mldeploy.contract import PREDICTIONS
from mldeploy.monitoring.packing import pack_answer_columns, pack_inputs, pack_json, pack_table_outputs
from modeler.inference import Inference
from modeler.predictors.base import AnswerTable, TableAnswers


def answered_rows(result: Inference) -> tuple[bytes, bytes]:
    """``result``'s inputs and outputs, packed."""
    inputs, answers = pack_inputs(result.features, result.rows), result.answers
    if isinstance(answers, TableAnswers):
        # Answered from a fixed table: each row's answer is its entry's, pre-serialised once per
        # version (what the batch answer is made of). A batch keeps its entries and each used
        # entry's answer once; a single row, its answer, packed once per entry.
        if isinstance(answers.entries, np.ndarray):
            return inputs, pack_table_outputs(answers.entries, entry_fragments(answers.table).predictions)
        if len(answers.entries) == 1:
            return inputs, answers.table.rendered(_PACKED_KEY, _packed_entries)[answers.entries[0]]
        fragments = entry_fragments(answers.table).predictions
        return inputs, pack_json([fragments[entry] for entry in answers.entries])
    columns = None if result.single else answer_columns(result)
    if columns is not None:  # a batch answered by arrays: kept as its columns
        return inputs, pack_answer_columns(columns)
    if result.single:  # exactly the answer's own keys, without the echo, version and the rest
        return inputs, pack_json(plain_rows(result))
    answer = predict_answer(result, warnings={}, serialised=True)
    return inputs, pack_json(answer[PREDICTIONS])


# This module's key for what it keeps in a predictor's answer table: each entry's single-row
# outputs, packed.
_PACKED_KEY = __name__


def _packed_entries(table: AnswerTable) -> list[bytes]:
    return [pack_json([fragment]) for fragment in entry_fragments(table).predictions]
