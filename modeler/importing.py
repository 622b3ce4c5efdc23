"""Adopting a user's model: a fitted scikit-learn estimator or Pipeline, or a file holding one.

A file is read by :func:`modeler.safe_load.load_estimator` (the restricted unpickler, or skops'
safe loader; never ``pickle.load``), with only the operator's ``trust`` added to the allowed
types. The object must be a fitted scikit-learn classifier or regressor; its schema comes from the
``sample`` when given (a DataFrame or a CSV), else from the estimator itself. It is then saved as
a new version by the version store, like a training, with ``"source": "imported"``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from modeler.errors import DataError
from modeler.json_values import json_safe
from modeler.load_errors import ModelFileError
from modeler.training import TrainedVersion, new_version_id

if TYPE_CHECKING:
    import pandas as pd


def _estimator(estimator_or_path: object, trust: Sequence[str]) -> tuple[object, str | None]:
    """The object to adopt and the file name it came from (None for an object given)."""
    if isinstance(estimator_or_path, (str, os.PathLike)):
        from modeler.safe_load import load_estimator

        path = Path(estimator_or_path)
        if not path.is_file():
            raise ModelFileError(f"model file not found: {path.name}", path=path)
        return load_estimator(path, trust=trust), path.name
    return estimator_or_path, None


def check_fitted(estimator: object) -> None:
    """ModelFileError unless ``estimator`` is a fitted scikit-learn classifier or regressor."""
    from sklearn.base import BaseEstimator, is_classifier, is_regressor
    from sklearn.exceptions import NotFittedError
    from sklearn.utils.validation import check_is_fitted

    if not isinstance(estimator, BaseEstimator):
        raise ModelFileError(f"a {type(estimator).__name__} is not a scikit-learn estimator or Pipeline")
    if not (is_classifier(estimator) or is_regressor(estimator)):
        raise ModelFileError(f"a {type(estimator).__name__} is neither a classifier nor a regressor")
    try:
        check_is_fitted(estimator)
    except NotFittedError as exc:
        raise ModelFileError(f"the {type(estimator).__name__} is not fitted: fit it before importing it") from exc


def _sample(sample: object) -> pd.DataFrame | None:
    import pandas as pd

    if sample is None or isinstance(sample, pd.DataFrame):
        return sample
    path = Path(sample)  # type: ignore[arg-type]
    if not path.is_file():
        raise DataError(f"sample file not found: {path.name}", path=path)
    try:
        return pd.read_csv(path)
    except (ValueError, OSError) as exc:
        raise DataError(f"cannot read the sample {path.name}: {exc}", path=path) from exc


def adoption(
    estimator_or_path: object, sample: object = None, trust: Sequence[str] = ()
) -> Callable[[dict | None], TrainedVersion]:
    """What the version store calls to save an imported model (its Training): reads and checks
    the model now, so a refused file fails before the writers' lock is taken."""

    from modeler.model_description import IMPORTED_SOURCE, describe, served

    estimator, file_name = _estimator(estimator_or_path, trust)
    check_fitted(estimator)
    frame = _sample(sample)
    try:
        predictor, schema = served(estimator, frame)
    except ValueError as exc:  # a sample without the model's columns, an estimator without names
        raise DataError(f"cannot describe the model's input: {exc}") from exc
    if frame is not None:  # the sample must be something the model answers
        try:
            predictor.answer(frame[list(schema.names)].head(5).to_numpy(dtype=object).tolist(), single=False)
        except Exception as exc:  # whatever the estimator raises on it
            raise DataError(f"the model cannot answer the sample's rows: {type(exc).__name__}: {exc}") from exc

    def make(current: dict | None) -> TrainedVersion:
        now = datetime.now(UTC)
        metadata = {
            "version": new_version_id(now),
            "trained_at": now.isoformat(timespec="microseconds"),
            **describe(estimator, predictor, schema, IMPORTED_SOURCE, frame),
            "params": json_safe(estimator.get_params(deep=False)),
            "imported": {
                "file": file_name,
                "trusted": list(trust),
                "sample_rows": None if frame is None else len(frame),
            },
        }
        return TrainedVersion(estimator, metadata, predictor)

    return make
