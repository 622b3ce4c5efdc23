"""Classes a model file may hold that the restricted loader does not know (tests/test_safe_load.py):
one a user's pipeline would use, one that acts the moment it is unpickled."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin


class ShiftTransformer(TransformerMixin, BaseEstimator):
    """Adds ``shift`` to every value: a user's own pipeline step."""

    def __init__(self, shift: float = 1.0) -> None:
        self.shift = shift

    def fit(self, X, y=None) -> ShiftTransformer:
        self.n_features_in_ = np.asarray(X).shape[1]
        return self

    def transform(self, X) -> np.ndarray:
        return np.asarray(X, dtype=np.float64) + self.shift


class WritesOnLoad:
    """Creates the file named ``marker`` as soon as it is unpickled (pickle or skops)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __setstate__(self, state: dict) -> None:
        Path(state["marker"]).write_text("ran")
        self.__dict__.update(state)
