"""One chunk's scoring, the same for local chunks and Dask partitions: what
:func:`modeler.batch.score_frame` gives (the good rows with ``Class`` and the probabilities, the
bad fields), plus, per row, the ``ModelVersion`` that scored it and the ``Warnings``: the fields
outside their training range, as ``POST /predict`` names them in its ``Warnings`` for that row
(the values are in the row, the ranges in the model's ``feature_ranges``)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from mldeploy.contract import MODEL_VERSION, WARNINGS
from modeler.batch import ScoredChunk, check_columns, score_frame
from modeler.modeler import LoadedModel
from modeler.ranges import out_of_range

# The output columns added here, after score_frame's; an input column of these names is refused.
ADDED_COLUMNS = (MODEL_VERSION, WARNINGS)
# Between field names in a Warnings cell. Feature names with spaces are common (scikit-learn's
# own Iris names them "petal length (cm)"), semicolons are not; a CSV cell needs no quotes for it.
WARNING_SEPARATOR = ";"


def check_input_columns(columns: Sequence[object], model: LoadedModel) -> None:
    """Raise :class:`modeler.errors.InvalidInput` when a feature column is absent, or an input
    column would be overwritten by an output column (``Class``, a class, or one added here)."""
    check_columns(columns, model.features, (*model.tree.classes, *ADDED_COLUMNS))


def out_of_range_fields(values: np.ndarray, model: LoadedModel) -> np.ndarray:
    """Per row of ``values`` (features in model order), the out-of-range fields joined by
    :data:`WARNING_SEPARATOR`, or ``""`` for a row with none (modeler.ranges decides, as for /predict)."""
    cells = filled(len(values), "")
    for row, found in out_of_range(values, model.features, model.ranges).items():
        cells[row] = WARNING_SEPARATOR.join(w.field for w in found)
    return cells


def filled(rows: int, value: str) -> np.ndarray:
    """An object array of ``rows`` times ``value`` (``np.full`` takes some 50 times longer for objects)."""
    cells = np.empty(rows, dtype=object)
    cells.fill(value)
    return cells


def score_chunk(model: LoadedModel, frame: pd.DataFrame, first_row: int = 0) -> ScoredChunk:
    """Score one chunk with ``model``: ``score_frame``'s result, its scored rows followed by the
    ``ModelVersion`` and ``Warnings`` columns. ``first_row`` numbers the chunk's rows in the file."""
    check_input_columns(frame.columns, model)
    result = score_frame(model, frame, first_row=first_row)
    scored = result.scored  # filled in place
    # Object columns, as Class is: the same types in every chunk (Parquet needs one schema).
    scored[MODEL_VERSION] = pd.Series(filled(len(scored), model.version), dtype=object, copy=False)
    scored[WARNINGS] = pd.Series(
        out_of_range_fields(scored[list(model.features)].to_numpy(), model), dtype=object, copy=False
    )
    return result
