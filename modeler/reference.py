"""A version's training reference: what its training data and its own predictions on that data
looked like, per feature, so that live traffic can be compared with it (drift).

Saved in the version's metadata under :data:`REFERENCE`. For a number (``number``/``integer``
fields, and every field of a version without a schema):

- ``edges``: the cut points of ten quantile bins (the training deciles, duplicates removed), and
  ``counts``: how many training values fall in each bin, by :func:`bin_index`'s rule (a value
  equal to a cut point belongs to the bin below it). PSI compares these shares with the live ones.
- ``sample``: the training values themselves, sorted, or a seeded random subsample of at most
  :data:`SAMPLE_SIZE` of them. The KS test is a two-sample test between this sample and the live
  values: its p-value is honest about the reference's size (a test against the deciles alone
  would treat ten points as a known continuous distribution and overstate its confidence).

For a category (``text``/``boolean`` fields): ``categories`` (their JSON values, most frequent
first) and ``counts``. Both kinds count ``missing`` values apart.

``prediction`` is the same description of what the model answered on its training rows: its
classes as categories for a classifier, the predicted values as a number for a regressor.

Pure numpy and pandas (imported only to compute one): the service reads the reference, this
module computes it, and gives both sides the one binning rule.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from modeler.json_values import json_safe

if TYPE_CHECKING:  # pandas only when a reference is computed: a server reading one never imports it
    import pandas as pd

REFERENCE = "reference"  # the metadata key
NUMBER, CATEGORY = "number", "category"  # a feature's kind in the reference
# Schema types read as numbers; text and boolean are categories.
NUMERIC_TYPES = frozenset({"number", "integer"})
CLASSIFICATION, REGRESSION = "classification", "regression"
BINS = 10
SAMPLE_SIZE = 1000
SAMPLE_SEED = 0
FORMAT = 1  # bumped if the layout changes, so that a reader can tell


def bin_index(edges: Sequence[float] | np.ndarray, values: np.ndarray) -> np.ndarray:
    """The bin of each value: 0 for ``v <= edges[0]``, ``i`` for ``edges[i-1] < v <= edges[i]``,
    ``len(edges)`` above the last cut point. Training and live values go through this one rule."""
    return np.searchsorted(np.asarray(edges, dtype=float), values, side="left")


def _missing(column: pd.Series) -> pd.Series:
    return column.isna()


def number_reference(column: pd.Series, bins: int = BINS, sample_size: int = SAMPLE_SIZE) -> dict:
    """The reference of a numeric column: quantile bins with their counts, a sample, the missing count."""
    import pandas as pd

    missing = _missing(column)
    values = np.sort(pd.to_numeric(column[~missing], errors="coerce").to_numpy(dtype=float))
    values = values[np.isfinite(values)]
    edges = np.unique(np.quantile(values, np.arange(1, bins) / bins)) if values.size else np.zeros(0)
    counts = np.bincount(bin_index(edges, values), minlength=edges.size + 1)
    sample = values
    if values.size > sample_size:
        picked = np.random.default_rng(SAMPLE_SEED).choice(values.size, size=sample_size, replace=False)
        sample = np.sort(values[picked])
    return {
        "kind": NUMBER,
        "rows": int(values.size),
        "missing": int(missing.sum()),
        "edges": [float(e) for e in edges],
        "counts": [int(c) for c in counts],
        "sample": [float(v) for v in sample],
    }


def category_reference(column: pd.Series) -> dict:
    """The reference of a categorical column: each value seen (its JSON value) and its count."""
    missing = _missing(column)
    counts = column[~missing].value_counts(sort=True)
    return {
        "kind": CATEGORY,
        "rows": int((~missing).sum()),
        "missing": int(missing.sum()),
        "categories": [json_safe(v) for v in counts.index],
        "counts": [int(c) for c in counts.to_numpy()],
    }


def _kinds(names: Iterable[str], schema_fields: Sequence[Mapping] | None) -> dict[str, str]:
    types = {str(f.get("name")): f.get("type") for f in schema_fields or ()}
    return {name: NUMBER if types.get(name, "number") in NUMERIC_TYPES else CATEGORY for name in names}


def reference_of(
    frame: pd.DataFrame,
    predictions: Sequence | np.ndarray,
    schema_fields: Sequence[Mapping] | None = None,
    *,
    task: str = CLASSIFICATION,
) -> dict:
    """The training reference of ``frame`` (the rows a version was fitted on) and of the
    model's ``predictions`` on them. ``schema_fields`` are the schema's fields (``{"name",
    "type"}``: text and boolean are categories); without them every column is a number."""
    import pandas as pd

    kinds = _kinds((str(c) for c in frame.columns), schema_fields)
    features = {
        str(name): (number_reference if kinds[str(name)] == NUMBER else category_reference)(frame[name])
        for name in frame.columns
    }
    answered = pd.Series(np.asarray(predictions).ravel())
    prediction = number_reference(answered) if task == REGRESSION else category_reference(answered)
    return {"format": FORMAT, "bins": BINS, "rows": len(frame), "features": features, "prediction": prediction}
