"""What a saved version says of the model it holds, whether trained or imported: its task, class,
predictor, input schema, feature names and ranges, classes (in their own JSON type).

One place builds it so that a trained and an imported version read alike (see SCHEMA.md).
"""

from __future__ import annotations

import platform
from typing import TYPE_CHECKING

import numpy as np

from modeler.json_values import json_safe
from modeler.predictors import predictor_for
from modeler.predictors.base import Predictor
from modeler.reference import REFERENCE, reference_of
from modeler.schema import SCHEMA, Schema, ranges_of, schema_of

if TYPE_CHECKING:
    import pandas as pd

TRAINED_SOURCE = "trained"
IMPORTED_SOURCE = "imported"


def served(estimator: object, sample: pd.DataFrame | None = None) -> tuple[Predictor, Schema]:
    """The predictor that will answer for ``estimator`` and the schema its requests are checked
    against (a field is nullable only where that predictor takes missing values)."""
    from modeler.predictors.general import GeneralPredictor

    predictor = predictor_for(estimator, Schema(()))  # the general one is rebuilt below with its schema
    nullable = predictor.accepts_missing if not isinstance(predictor, GeneralPredictor) else None
    schema = schema_of(estimator, sample, nullable=nullable)
    if isinstance(predictor, GeneralPredictor):
        predictor = GeneralPredictor.from_estimator(estimator, schema)
    return predictor, schema


def environment() -> dict:
    """The versions of what saved a model (a version saved by another scikit-learn is refused or
    retrained on load, by policy)."""
    import joblib
    import pandas as pd
    import sklearn

    return {
        "python": platform.python_version(),
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "joblib": joblib.__version__,
        "pandas": pd.__version__,
    }


def describe(
    estimator: object, predictor: Predictor, schema: Schema, source: str, sample: pd.DataFrame | None = None
) -> dict:
    """The metadata keys every version carries about its model. With ``sample`` (the training
    rows, or an import's sample), also the drift reference of those rows and of the model's
    answers to them (:mod:`modeler.reference`); without one, a version has no reference."""
    from modeler.predictors.general import task_of

    task = task_of(estimator)
    described = {
        "task": task,
        "estimator": type(estimator).__name__,
        "predictor": predictor.name,
        "source": source,
        SCHEMA: json_safe(schema.as_metadata()),
        "feature_names": list(schema.names),
        "feature_ranges": ranges_of(schema),
        "classes": json_safe(np.asarray(estimator.classes_).tolist()) if task == "classification" else [],
    }
    if hasattr(estimator, "get_depth") and hasattr(estimator, "get_n_leaves"):  # a single tree
        described["tree"] = {"depth": int(estimator.get_depth()), "leaves": int(estimator.get_n_leaves())}
    described["environment"] = environment()
    if sample is not None:
        fields = described[SCHEMA]["fields"]
        rows = sample[list(schema.names)]
        # A model fitted on a bare array warns when given column names: it gets the array.
        answered = estimator.predict(rows.to_numpy() if schema.positional else rows)
        described[REFERENCE] = reference_of(rows, answered, fields, task=task)
    return described
