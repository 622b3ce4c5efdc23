"""Training one version: load the data, refuse a change of input fields unless asked, split off
a holdout, fit, score the holdout, and describe it all in the version's metadata.

scikit-learn, pandas and joblib are imported here, when a version is trained, never to serve one.
"""

from __future__ import annotations

import platform
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import numpy as np

from modeler.errors import DataError, SchemaChange
from modeler.json_values import json_safe
from modeler.recipe import ESTIMATOR, RECIPE, Recipe
from modeler.reference import REFERENCE, reference_of

if TYPE_CHECKING:
    import pandas as pd
    from sklearn.tree import DecisionTreeClassifier

    from modeler.data import DataSource

HOLDOUT_FRACTION = 0.2
# Below this many rows a holdout says nothing; the model then trains on everything.
MIN_ROWS_FOR_HOLDOUT = 10


@dataclass(frozen=True)
class TrainedVersion:
    """A freshly fitted estimator and the metadata of the version it becomes (files not yet saved)."""

    estimator: DecisionTreeClassifier
    metadata: dict


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
) -> TrainedVersion:
    """Fit a DecisionTreeClassifier with ``params`` on ``data`` (None for Iris) and describe it.

    Unless ``allow_schema_change``, data whose input fields differ from the ``current`` version's
    (its metadata) raises SchemaChange before anything is fitted.
    """
    import joblib
    import pandas as pd
    import sklearn

    from modeler.data import describe_source, load_training_data

    X, y = load_training_data(data, target)
    if not allow_schema_change:
        check_schema(current, [str(c) for c in X.columns])
    estimator, holdout, X_train = fit_with_holdout(X, y, params, random_state)
    now = datetime.now(UTC)
    metadata = {
        "version": new_version_id(now),
        "trained_at": now.isoformat(timespec="microseconds"),
        "estimator": ESTIMATOR,
        "params": json_safe(estimator.get_params()),
        "target": target,
        RECIPE: Recipe.of(data, target, params).as_metadata(),
        "feature_names": [str(f) for f in estimator.feature_names_in_],
        "feature_ranges": {
            str(name): [float(X_train[name].min()), float(X_train[name].max())] for name in X_train.columns
        },
        "classes": [str(c) for c in estimator.classes_],
        "holdout": holdout,
        REFERENCE: reference_of(X_train, estimator.predict(X_train)),  # for drift (modeler/reference.py)
        "data": {"source": describe_source(data), "rows": len(X)},
        "tree": {"depth": int(estimator.get_depth()), "leaves": int(estimator.get_n_leaves())},
        "environment": {
            "python": platform.python_version(),
            "sklearn": sklearn.__version__,
            "numpy": np.__version__,
            "joblib": joblib.__version__,
            "pandas": pd.__version__,
        },
    }
    return TrainedVersion(estimator, metadata)


def fit_with_holdout(
    X: pd.DataFrame, y: pd.Series, params: Mapping[str, object], random_state: int | None
) -> tuple[DecisionTreeClassifier, dict, pd.DataFrame]:
    """Fit on a stratified split and score the held-out part; the saved model is this fit."""
    from sklearn.model_selection import train_test_split
    from sklearn.tree import DecisionTreeClassifier

    holdout: dict = {"fraction": HOLDOUT_FRACTION, "accuracy": None, "stratified": False}
    X_train, y_train = X, y
    if len(X) >= MIN_ROWS_FOR_HOLDOUT:
        stratify = y if y.value_counts().min() >= 2 else None
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
    estimator = DecisionTreeClassifier(random_state=random_state, **params)
    try:
        estimator.fit(X_train, y_train)
    # Parameters valid alone but not on this data; or values of a type the constraints let
    # through but fit cannot use (class_weight {"setosa": {...}}: TypeError; monotonic_cst
    # {}: IndexError).
    except (ValueError, TypeError, IndexError) as exc:
        raise DataError(f"training failed: {exc}") from exc
    if X_train is not X:
        holdout["accuracy"] = float(np.mean(estimator.predict(X_test) == y_test.to_numpy()))
        holdout["train_rows"], holdout["test_rows"] = len(X_train), len(X_test)
    else:
        holdout["train_rows"], holdout["test_rows"] = len(X), 0
    return estimator, holdout, X_train
