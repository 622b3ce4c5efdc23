"""ONNX export of a saved version, for teams that serve it elsewhere (onnxruntime, Triton...).

Needs the optional extra ``requirements-onnx.txt`` (skl2onnx, onnx); imported only when used.
The graph takes ``input``: float32 rows in feature order, and gives ``label`` (class names) and
``probabilities`` (one column per class, in the metadata's class order).
"""

from __future__ import annotations

import json
from pathlib import Path

from modeler.atomic import atomic_write_bytes
from modeler.errors import MissingExtra
from modeler.modeler import LoadedModel

INPUT_NAME = "input"
EXTRA = "requirements-onnx.txt"


def to_onnx(model: LoadedModel) -> bytes:
    """The ONNX bytes of a loaded, verified version."""
    try:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
    except ImportError as exc:
        raise MissingExtra(
            f"ONNX export needs the optional extra: pip install -r {EXTRA} (skl2onnx and onnx; missing: {exc.name})"
        ) from exc
    estimator = model.estimator
    onx = convert_sklearn(
        estimator,
        name=f"mldeploy-{model.version}",
        initial_types=[(INPUT_NAME, FloatTensorType([None, len(model.features)]))],
        # A plain probability tensor rather than a list of dicts (ZipMap): what most clients want.
        options={id(estimator): {"zipmap": False}},
    )
    for key, value in {
        "mldeploy.version": model.version,
        "mldeploy.feature_names": json.dumps(list(model.features)),
        "mldeploy.classes": json.dumps(list(model.metadata["classes"])),
        "mldeploy.artifact_sha256": model.metadata["artifact"]["sha256"],
    }.items():
        onx.metadata_props.add(key=key, value=value)
    return onx.SerializeToString()


def write_onnx(model: LoadedModel, path: str | Path) -> int:
    """Write ``model`` as ONNX to ``path`` (atomically); returns the number of bytes written."""
    data = to_onnx(model)
    atomic_write_bytes(Path(path), data)
    return len(data)
