"""Training one version: load the data, refuse a change of input fields unless asked, split off
a holdout, fit, score the holdout, and describe it all in the version's metadata.

scikit-learn, pandas and joblib are imported here, when a version is trained, never to serve one.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from modeler.errors import DataError, SchemaChange
from modeler.estimators import DEFAULT_ESTIMATOR
from modeler.json_values import json_safe
from modeler.recipe import ESTIMATOR, RECIPE, Recipe

if TYPE_CHECKING:
    import pandas as pd

    from modeler.data import DataSource
    from modeler.predictors.base import Predictor

HOLDOUT_FRACTION = 0.2
# Below this many rows a holdout says nothing; the model then trains on everything.
MIN_ROWS_FOR_HOLDOUT = 10


@dataclass(frozen=True)
class TrainedVersion:
    """A freshly fitted estimator and the metadata of the version it becomes (files not yet saved)."""

    estimator: object
    metadata: dict
    # The predictor that will answer for it, when the maker built it already (else built on save).
    predictor: Predictor | None = None


def new_version_id(now: datetime) -> str:
    """A sortable, unique version id such as ``20261122T021530Z-3f9a1c``."""
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def check_schema(current: Mapping | None, features: list[str]) -> None:
    """Raise SchemaChange when ``features`` are not the input fields of the ``current`` version
    (its metadata; None when there is none, or it cannot be read: nothing to compare with)."""
    old = (current or {}).get("feature_names")
    if isinstance(old, list) and old != features:
        raise SchemaChange(str(current.get("version")), [str(f) for f in old], features)


def train(
    data: DataSource,
    target: str,
    params: Mapping[str, object],
    random_state: int | None,
    *,
    current: Mapping | None = None,
    allow_schema_change: bool = False,
    estimator: str | object = DEFAULT_ESTIMATOR,
) -> TrainedVersion:
    """Fit ``estimator`` (a class name from :mod:`modeler.estimators`, or an unfitted instance,
    cloned) with ``params`` on ``data`` (None for Iris) and describe it.

    Unless ``allow_schema_change``, data whose input fields differ from the ``current`` version's
    (its metadata) raises SchemaChange before anything is fitted.
    """
    from sklearn.base import is_regressor

    from modeler.data import describe_source, load_training_data
    from modeler.estimators import build
    from modeler.model_description import TRAINED_SOURCE, describe, served

    made = build(estimator, params, random_state)  # bad parameters fail before the data is read
    X, y = load_training_data(data, target, numeric_target=is_regressor(made))
    if not allow_schema_change:
        check_schema(current, [str(c) for c in X.columns])
    fitted, holdout, X_train = fit_with_holdout(made, X, y, random_state)
    predictor, schema = served(fitted, X_train)
    now = datetime.now(UTC)
    name = estimator if isinstance(estimator, str) else type(estimator).__name__
    metadata = {
        "version": new_version_id(now),
        "trained_at": now.isoformat(timespec="microseconds"),
        **describe(fitted, predictor, schema, TRAINED_SOURCE, X_train),  # with the drift reference
        "params": json_safe(fitted.get_params(deep=False)),
        "target": target,
        RECIPE: Recipe.of(data, target, params, ESTIMATOR if name == DEFAULT_ESTIMATOR else name).as_metadata(),
        "holdout": holdout,
        "data": {"source": describe_source(data), "rows": len(X)},
    }
    return TrainedVersion(fitted, metadata, predictor)


def fit_with_holdout(
    estimator: object, X: pd.DataFrame, y: pd.Series, random_state: int | None
) -> tuple[object, dict, pd.DataFrame]:
    """Fit on a split (stratified for a classifier) and score the held-out part (accuracy, or a
    regressor's R²); the saved model is this fit."""
    from sklearn.base import is_regressor
    from sklearn.model_selection import train_test_split

    regression = is_regressor(estimator)
    holdout: dict = {"fraction": HOLDOUT_FRACTION, "accuracy": None, "stratified": False}
    if regression:
        holdout["r2"] = None
    X_train, y_train = X, y
    if len(X) >= MIN_ROWS_FOR_HOLDOUT:
        stratify = y if not regression and y.value_counts().min() >= 2 else None
        try:
            X_train, X_test, y_train, y_test = train_test_split(
                X, y, test_size=HOLDOUT_FRACTION, random_state=random_state, stratify=stratify
            )
        except ValueError:  # too few rows per class for a stratified split
            stratify = None
            X_train, X_test, y_train, y_test = train_test_split(
                X, y, test_size=HOLDOUT_FRACTION, random_state=random_state
            )
        holdout["stratified"] = stratify is not None
    try:
        estimator.fit(X_train, y_train)
    # Parameters valid alone but not on this data; or values of a type the constraints let
    # through but fit cannot use (class_weight {"setosa": {...}}: TypeError; monotonic_cst
    # {}: IndexError).
    except (ValueError, TypeError, IndexError) as exc:
        raise DataError(f"training failed: {exc}") from exc
    if X_train is not X:
        if regression:
            holdout["r2"] = float(estimator.score(X_test, y_test))
        else:
            holdout["accuracy"] = float(np.mean(estimator.predict(X_test) == y_test.to_numpy()))
        holdout["train_rows"], holdout["test_rows"] = len(X_train), len(X_test)
    else:
        holdout["train_rows"], holdout["test_rows"] = len(X), 0
    return estimator, holdout, X_train
