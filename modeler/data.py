"""Training data: Iris from scikit-learn's bundled copy, or a user's CSV/DataFrame."""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import pandas as pd
from sklearn.datasets import load_iris

from modeler.errors import DataError

IRIS_FEATURES = ("sepal_length", "sepal_width", "petal_length", "petal_width")
IRIS_TARGET = "species"
IRIS_SOURCE = "sklearn.datasets.load_iris (bundled copy)"

DataSource = str | PathLike | pd.DataFrame | None


def iris_frame() -> pd.DataFrame:
    """Iris as one DataFrame with snake_case feature columns and a ``species`` label column.

    ``load_iris`` reads the CSV shipped inside scikit-learn, so this never touches the network.
    """
    bunch = load_iris(as_frame=True)
    frame = bunch.data.copy()
    frame.columns = list(IRIS_FEATURES)
    frame[IRIS_TARGET] = bunch.target.map(dict(enumerate(bunch.target_names))).astype(str)
    return frame


def describe_source(data: DataSource) -> str:
    """A short human description of where training data comes from (kept in the metadata, which
    a server shows its clients: a CSV by its file name only; the recipe has its whole path)."""
    if data is None:
        return IRIS_SOURCE
    if isinstance(data, pd.DataFrame):
        return "DataFrame"
    return Path(data).name


def load_training_data(
    data: DataSource, target: str, *, numeric_target: bool = False
) -> tuple[pd.DataFrame, pd.Series]:
    """Return ``(X, y)``: numeric feature columns and the target as strings (as float64 with
    ``numeric_target``, for a regressor).

    ``data`` is None (Iris), a CSV path, or a DataFrame holding a ``target`` column.
    """
    if data is None:
        frame = iris_frame()
        if target != IRIS_TARGET:
            raise DataError(f"the Iris data has target column {IRIS_TARGET!r}, not {target!r}")
    elif isinstance(data, pd.DataFrame):
        frame = data
    else:
        path = Path(data)
        # The messages name the file, not its directory: a server may show them to clients.
        if not path.is_file():
            raise DataError(f"training data file not found: {path.name}", path=path)
        try:
            frame = pd.read_csv(path)
        except (ValueError, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise DataError(f"cannot read training data {path.name}: {reason}", path=path) from exc

    if target not in frame.columns:
        raise DataError(f"target column {target!r} not in the data (columns: {', '.join(map(str, frame.columns))})")
    features = frame.drop(columns=[target])
    if features.shape[1] == 0:
        raise DataError("the data has no feature columns besides the target")
    bad = [
        str(c)
        for c in features.columns
        if not pd.api.types.is_numeric_dtype(features[c]) or pd.api.types.is_bool_dtype(features[c])
    ]
    if bad:
        raise DataError(f"feature columns must be numeric: {', '.join(bad)}")
    features.columns = [str(c) for c in features.columns]
    if features.isna().any().any() or frame[target].isna().any():
        raise DataError("the training data has missing values; drop or fill them first")
    if len(frame) < 2:
        raise DataError("the training data needs at least 2 rows")
    if numeric_target:
        y = frame[target]
        if not pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
            raise DataError(f"a regressor needs a numeric target column; {target!r} is not")
        return features.astype("float64"), y.astype("float64")
    # Labels are kept as strings so that predictions are str whatever the CSV held.
    return features.astype("float64"), frame[target].astype(str)
