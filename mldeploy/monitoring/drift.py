"""Drift: the logged inputs and predictions over a window, compared with the version's training
reference (``metadata["reference"]``, computed by :mod:`modeler.reference`).

Per feature, and for the predictions:

- ``psi``, the population stability index over the reference's bins (the training deciles for a
  number, one bin per category for a category, plus a bin for missing values when either side
  has some, and one for categories training never saw): ``sum((live - ref) * ln(live / ref))`` of
  the bins' shares, each share floored at :data:`EPSILON` so that an empty bin counts as very
  small rather than infinite.
- ``p_value``: for a number, the two-sample Kolmogorov-Smirnov test (``scipy.stats.ks_2samp``)
  between the reference's sample of training values (all of them up to 1,000) and the window's
  values; for a category, the chi-squared test of homogeneity (``scipy.stats.chi2_contingency``)
  of the training counts against the window's counts. Both are two-sample tests: they account
  for the training side's size too.
- ``verdict``: ``stable`` when PSI < 0.1, ``moderate`` when PSI < 0.25, else ``major`` (the usual
  reading of PSI, and Evidently's default threshold of 0.1). The p-value is reported beside it,
  not folded in: with thousands of rows a test finds any difference significant.

Everything is read from the shared log, so any worker of any replica answers the same figures.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from mldeploy.contract import CLASS, PREDICTION
from mldeploy.monitoring.store import Store
from mldeploy.monitoring.windows import Window, logged
from modeler.reference import CATEGORY, NUMBER, bin_index

STABLE_BELOW = 0.1
MODERATE_BELOW = 0.25
STABLE, MODERATE, MAJOR = "stable", "moderate", "major"
VERDICTS = (STABLE, MODERATE, MAJOR)  # their index is the verdict's level in the metrics
EPSILON = 1e-4
KS, CHI2 = "ks_2samp", "chi2_contingency"


def verdict(psi: float) -> str:
    """``stable`` below 0.1, ``moderate`` below 0.25, else ``major``."""
    if psi < STABLE_BELOW:
        return STABLE
    return MODERATE if psi < MODERATE_BELOW else MAJOR


def psi(reference_counts: Sequence[float], live_counts: Sequence[float], epsilon: float = EPSILON) -> float:
    """The population stability index of ``live_counts`` against ``reference_counts`` (same bins)."""
    ref = np.asarray(reference_counts, dtype=float)
    live = np.asarray(live_counts, dtype=float)
    ref_share = np.maximum(ref / ref.sum(), epsilon) if ref.sum() else np.full(ref.size, epsilon)
    live_share = np.maximum(live / live.sum(), epsilon) if live.sum() else np.full(live.size, epsilon)
    return float(np.sum((live_share - ref_share) * np.log(live_share / ref_share)))


def is_number(value: object) -> bool:
    """A finite JSON number (a bool is not one)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _with_missing(ref: list[int], live: list[int], ref_missing: int, live_missing: int) -> tuple[list, list]:
    if ref_missing or live_missing:
        return [*ref, ref_missing], [*live, live_missing]
    return ref, live


def _figures(score: float, p_value: float | None, test: str, rows: int, missing: int) -> dict:
    return {"psi": score, "p_value": p_value, "verdict": verdict(score), "test": test, "rows": rows, "missing": missing}


def _empty(test: str) -> dict:
    return {"psi": None, "p_value": None, "verdict": None, "test": test, "rows": 0, "missing": 0}


def number_drift(reference: Mapping, values: Sequence[object]) -> dict:
    """Drift of a numeric feature's live ``values`` (None: missing) against its reference."""
    if not values:
        return _empty(KS)
    present = np.asarray([float(v) for v in values if is_number(v)], dtype=float)
    missing = len(values) - int(present.size)
    edges = reference["edges"]
    live_counts = np.bincount(bin_index(edges, present), minlength=len(edges) + 1).tolist()
    ref_counts, live_counts = _with_missing(list(reference["counts"]), live_counts, reference["missing"], missing)
    p_value = None
    sample = reference.get("sample") or []
    if present.size and sample:
        from scipy.stats import ks_2samp  # the service imports scipy only to answer drift

        # The exact method warns when it falls back to the asymptotic one: same test, say nothing.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            p_value = float(ks_2samp(np.asarray(sample, dtype=float), present).pvalue)
    return _figures(psi(ref_counts, live_counts), p_value, KS, len(values), missing)


def _category_key(value: object) -> tuple:
    # JSON kind and value: the text "true" is not the boolean true.
    return (type(value).__name__ if isinstance(value, (bool, str)) else "number", value)


def category_drift(reference: Mapping, values: Sequence[object]) -> dict:
    """Drift of a categorical feature's live ``values`` (None: missing) against its reference;
    categories training never saw share one more bin (``unseen`` counts them)."""
    if not values:
        return {**_empty(CHI2), "unseen": 0}
    slots = {_category_key(c): i for i, c in enumerate(reference["categories"])}
    live = [0] * (len(slots) + 1)  # the last: unseen categories
    missing = 0
    for value in values:
        if value is None:
            missing += 1
        else:
            live[slots.get(_category_key(value), len(slots))] += 1
    ref_counts, live_counts = _with_missing([*reference["counts"], 0], live, reference["missing"], missing)
    table = np.asarray([ref_counts, live_counts], dtype=float)
    table = table[:, table.sum(axis=0) > 0]  # a bin empty on both sides says nothing
    p_value = 1.0
    if table.shape[1] >= 2 and table[0].sum() > 0:
        from scipy.stats import chi2_contingency

        p_value = float(chi2_contingency(table).pvalue)
    return {**_figures(psi(ref_counts, live_counts), p_value, CHI2, len(values), missing), "unseen": live[-1]}


def compare(reference: Mapping, values: Sequence[object]) -> dict:
    """Drift of ``values`` against one reference entry, by its kind (number or category)."""
    if reference.get("kind") == CATEGORY:
        return category_drift(reference, values)
    if reference.get("kind") == NUMBER:
        return number_drift(reference, values)
    raise ValueError(f"unknown reference kind {reference.get('kind')!r}")


def drift(store: Store, model: str, version: str, reference: Mapping, window: Window) -> dict:
    """Drift of the window's logged rows of ``version`` against its training ``reference``."""
    rows = logged(store, model, version, window)
    inputs = [row_inputs for row_inputs, _ in rows]
    outputs = [answer for _, answer in rows]
    features = {name: compare(ref, [row.get(name) for row in inputs]) for name, ref in reference["features"].items()}
    answered = reference["prediction"]
    key = PREDICTION if answered.get("kind") == NUMBER else CLASS
    return {
        "version": version,
        "rows": len(rows),
        "window": window.describe(),
        "thresholds": {MODERATE: STABLE_BELOW, MAJOR: MODERATE_BELOW},
        "features": features,
        "prediction": compare(answered, [out.get(key) for out in outputs]),
    }
