"""Out-of-range checks: a feature value outside the min/max seen in training still gets a
prediction, but the tree never saw such a value, so the caller is told."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Range = tuple[float, float]
# A feature without a recorded range (a model saved without one) is never flagged.
UNBOUNDED: Range = (-math.inf, math.inf)


@dataclass(frozen=True)
class RangeWarning:
    """One feature of one row outside its training range."""

    field: str
    value: float
    range: Range

    def as_dict(self) -> dict:
        """JSON-ready: ``{"field": ..., "value": ..., "range": [min, max]}``, the range as it is
        shown (:func:`shown`); ``/model`` keeps the exact values."""
        return {"field": self.field, "value": self.value, "range": [shown(bound) for bound in self.range]}


def shown(bound: float) -> float:
    """A training bound as a person reads it: the shortest decimal that is the same float32
    (the precision the tree compares at), so ``2.5996697762341636`` shows as ``2.5996697``."""
    if not math.isfinite(bound):
        return bound
    return float(np.format_float_positional(np.float32(bound), unique=True, trim="-"))


def training_ranges(metadata: Mapping, features: Sequence[str]) -> tuple[Range, ...]:
    """``(min, max)`` per feature in model order, from a version's ``feature_ranges``."""
    recorded = metadata.get("feature_ranges") or {}
    return tuple(tuple(map(float, recorded[f])) if f in recorded else UNBOUNDED for f in features)


def out_of_range(
    rows: Sequence[Sequence[float]] | np.ndarray, features: Sequence[str], ranges: Sequence[Range]
) -> dict[int, list[RangeWarning]]:
    """``{row index: warnings}`` for the rows with a value outside its range; empty when none."""
    if not ranges:
        return {}
    if len(rows) == 1:  # the common single-row request: plain Python beats numpy here
        row = rows[0]
        found = [
            RangeWarning(name, float(v), r)
            for name, v, r in zip(features, row, ranges, strict=True)
            if not r[0] <= v <= r[1]
        ]
        return {0: found} if found else {}
    values = np.asarray(rows, dtype=np.float64)
    bounds = np.asarray(ranges, dtype=np.float64)
    outside = (values < bounds[:, 0]) | (values > bounds[:, 1])
    if not outside.any():
        return {}
    warnings: dict[int, list[RangeWarning]] = {}
    for i, j in zip(*np.nonzero(outside), strict=True):
        warnings.setdefault(int(i), []).append(RangeWarning(features[j], float(values[i, j]), ranges[j]))
    return warnings
