"""ONNX export (the optional extra): onnxruntime must agree with the Modeler on all of Iris."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest

from mldeploy.cli import exit_codes
from mldeploy.cli import main as cli
from modeler.data import IRIS_TARGET, iris_frame
from modeler.modeler import Modeler
from modeler.onnx_export import EXTRA, INPUT_NAME


@pytest.fixture
def exported(model_dir: Path, monkeypatch) -> tuple[Modeler, Path]:
    """A trained version exported through the CLI; yields (modeler, ONNX file)."""
    modeler = Modeler(model_dir).fit()
    monkeypatch.setenv("MLDEPLOY_MODEL_DIR", str(model_dir))
    out = model_dir.parent / "model.onnx"
    assert cli.main(["export", modeler.version, "--format", "onnx", "-o", str(out)]) == 0
    return modeler, out


def test_onnxruntime_gives_the_same_labels_and_probabilities_on_all_150_rows(exported) -> None:
    modeler, path = exported
    frame = iris_frame().drop(columns=IRIS_TARGET)
    assert len(frame) == 150
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    labels, probabilities = session.run(None, {INPUT_NAME: frame.to_numpy(np.float32)})
    assert list(labels) == modeler.predict(frame)
    expected = modeler.predict_proba(frame)
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]
    # ONNX computes in float32; the tree's leaf fractions agree to float32 precision.
    np.testing.assert_allclose(probabilities, expected.to_numpy(), rtol=0, atol=1e-6)
    assert (probabilities.argmax(axis=1) == expected.to_numpy().argmax(axis=1)).all()


def test_export_records_where_it_came_from(exported) -> None:
    modeler, path = exported
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert props["mldeploy.version"] == modeler.version
    assert json.loads(props["mldeploy.feature_names"]) == list(modeler.features)
    assert json.loads(props["mldeploy.classes"]) == ["setosa", "versicolor", "virginica"]
    assert props["mldeploy.artifact_sha256"] == modeler.metadata["artifact"]["sha256"]


def test_missing_extra_is_a_clear_message(model_dir: Path, monkeypatch, capsys) -> None:
    version = Modeler(model_dir).fit().version
    monkeypatch.setenv("MLDEPLOY_MODEL_DIR", str(model_dir))
    monkeypatch.setitem(sys.modules, "skl2onnx", None)  # as if the extra were not installed
    out = model_dir.parent / "model.onnx"
    assert cli.main(["export", version, "-o", str(out)]) == exit_codes.EXIT_ERROR
    err = capsys.readouterr().err
    assert f"pip install -r {EXTRA}" in err and "skl2onnx" in err
    assert not out.exists()


def test_export_of_an_unknown_version_is_not_found(model_dir: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLDEPLOY_MODEL_DIR", str(model_dir))
    out = model_dir.parent / "model.onnx"
    assert cli.main(["export", "20990101T000000Z-000000", "-o", str(out)]) == exit_codes.EXIT_NOT_FOUND
