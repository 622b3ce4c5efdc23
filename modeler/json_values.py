"""Plain JSON values from what scikit-learn and numpy hand back, for the saved metadata."""

from __future__ import annotations

import numpy as np


def json_safe(value: object) -> object:
    """``value`` as JSON values: numpy scalars become Python numbers, tuples become lists, keys
    become strings, and objects JSON cannot hold (an estimator passed as a parameter) their repr."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)
