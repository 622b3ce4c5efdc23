"""The Modeler on its own: lazy training, persistence, integrity checks, input forms and errors."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn.base

from modeler import errors, training
from modeler.data import IRIS_FEATURES, iris_frame
from modeler.errors import IncompatibleModelError, InvalidInput, ModelIntegrityError, ModelNotReady
from modeler.modeler import DEFAULT_MODEL_DIR, Modeler
from modeler.store import ARTIFACT_FILE, METADATA_FILE, POINTER_FILE, VERSIONS_DIR
from tests.support import REPO, SEED_ROW

SEED_LIST = [5.0, 3.2, 1.5, 0.3]
VIRGINICA = {"sepal_length": 6.5, "sepal_width": 3.0, "petal_length": 5.5, "petal_width": 2.0}


def saved_versions(model_dir: Path) -> list[str]:
    return sorted(p.name for p in (model_dir / VERSIONS_DIR).iterdir() if not p.name.startswith("."))


def test_seed_prediction_trains_lazily_and_saves_one_version(modeler: Modeler, model_dir: Path) -> None:
    assert not (model_dir / POINTER_FILE).exists()
    assert modeler.predict(SEED_LIST) == "setosa"
    versions = saved_versions(model_dir)
    assert len(versions) == 1
    assert (model_dir / POINTER_FILE).read_text().strip() == versions[0] == modeler.version


def test_second_instance_loads_from_disk_without_refitting(trained: Modeler, model_dir: Path, monkeypatch) -> None:
    def no_fit(*args, **kwargs):
        raise AssertionError("refitted")

    monkeypatch.setattr(training, "fit_with_holdout", no_fit)
    again = Modeler(model_dir)
    assert again.predict(VIRGINICA) == "virginica"
    assert again.version == trained.version
    assert saved_versions(model_dir) == [trained.version]


def test_default_model_dir_is_the_repository_models_folder() -> None:
    assert DEFAULT_MODEL_DIR == REPO / "models"
    assert Modeler().model_dir == REPO / "models"


def test_metadata_describes_the_saved_model(trained: Modeler, model_dir: Path) -> None:
    meta = trained.metadata
    folder = model_dir / VERSIONS_DIR / meta["version"]
    assert json.loads((folder / METADATA_FILE).read_text()) == meta
    assert meta["feature_names"] == list(IRIS_FEATURES)
    assert meta["classes"] == ["setosa", "versicolor", "virginica"]
    assert meta["artifact"]["sha256"] == hashlib.sha256((folder / ARTIFACT_FILE).read_bytes()).hexdigest()
    assert set(meta["environment"]) >= {"python", "sklearn", "numpy", "joblib"}
    assert meta["environment"]["sklearn"] == sklearn.__version__
    assert meta["params"]["random_state"] == 0
    assert 0.8 <= meta["holdout"]["accuracy"] <= 1.0
    assert meta["holdout"]["train_rows"] + meta["holdout"]["test_rows"] == 150
    low, high = meta["feature_ranges"]["petal_length"]
    assert 1.0 <= low < high <= 6.9
    assert meta["trained_at"].endswith("+00:00")


def test_retraining_is_reproducible(tmp_path: Path) -> None:
    first = Modeler(tmp_path / "a").fit().metadata
    second = Modeler(tmp_path / "b").fit().metadata
    assert first["artifact"]["sha256"] == second["artifact"]["sha256"]
    assert first["holdout"] == second["holdout"]


def test_tampered_artifact_is_refused(trained: Modeler, model_dir: Path) -> None:
    artifact = model_dir / VERSIONS_DIR / trained.version / ARTIFACT_FILE
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    with pytest.raises(ModelIntegrityError, match="sha256"):
        Modeler(model_dir).load()
    with pytest.raises(ModelNotReady, match="sha256"):  # the lazy path refuses it too when told to fail
        Modeler(model_dir, on_corrupt="fail").predict(SEED_LIST)


def test_model_from_another_sklearn_version_is_refused(trained: Modeler, model_dir: Path) -> None:
    meta_path = model_dir / VERSIONS_DIR / trained.version / METADATA_FILE
    meta = json.loads(meta_path.read_text())
    meta["environment"]["sklearn"] = "0.24.2"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(IncompatibleModelError, match=r"0\.24\.2"):
        Modeler(model_dir).load()


def test_inconsistent_version_warning_is_an_error(model_dir: Path, monkeypatch) -> None:
    # Pickle the estimator as if an older scikit-learn wrote it, while the metadata claims ours:
    # only the unpickler's InconsistentVersionWarning can catch this one.
    monkeypatch.setattr(sklearn.base, "__version__", "1.0.0")
    Modeler(model_dir).fit()
    monkeypatch.undo()
    with pytest.raises(IncompatibleModelError, match=r"1\.0\.0"):
        Modeler(model_dir).load()


def test_pointer_to_a_missing_version_is_not_ready(trained: Modeler, model_dir: Path) -> None:
    (model_dir / POINTER_FILE).write_text("20000101T000000Z-000000\n")
    with pytest.raises(ModelIntegrityError, match="missing"):
        Modeler(model_dir).load()


def test_load_without_saved_model_says_so(modeler: Modeler) -> None:
    with pytest.raises(ModelNotReady, match="no saved model"):
        modeler.load()


def test_lazy_training_off_refuses_to_train(model_dir: Path) -> None:
    with pytest.raises(ModelNotReady, match="lazy training is off"):
        Modeler(model_dir, lazy_train=False).predict(SEED_LIST)


@pytest.mark.parametrize(
    "x",
    [SEED_LIST, tuple(SEED_LIST), np.array(SEED_LIST), SEED_ROW, {**SEED_ROW, "sepal_length": 5}],
    ids=["list", "tuple", "array", "dict", "int-value"],
)
def test_one_row_forms_return_one_label(trained: Modeler, x: object) -> None:
    assert trained.predict(x) == "setosa"
    proba = trained.predict_proba(x)
    assert proba == {"setosa": 1.0, "versicolor": 0.0, "virginica": 0.0}


def test_many_rows_return_labels_in_order(trained: Modeler) -> None:
    rows = [SEED_ROW, VIRGINICA, SEED_ROW]
    expected = ["setosa", "virginica", "setosa"]
    assert trained.predict(rows) == expected
    assert trained.predict([list(r.values()) for r in rows]) == expected
    assert trained.predict(np.array([list(r.values()) for r in rows])) == expected
    frame = pd.DataFrame(rows, index=[10, 20, 30])
    assert trained.predict(frame) == expected
    proba = trained.predict_proba(frame)
    assert list(proba.columns) == ["setosa", "versicolor", "virginica"]
    assert list(proba.index) == [10, 20, 30]
    assert trained.predict([SEED_ROW]) == ["setosa"]  # a list in gives a list out


def test_predictions_equal_sklearn_on_iris_and_random_rows(trained: Modeler) -> None:
    estimator = trained.ensure_ready().estimator
    rng = np.random.default_rng(0)
    frame = pd.concat(
        [
            iris_frame().drop(columns="species"),
            pd.DataFrame(rng.uniform(0, 8, size=(2000, 4)), columns=list(IRIS_FEATURES)),
        ],
        ignore_index=True,
    )
    assert trained.predict(frame) == list(estimator.predict(frame))
    np.testing.assert_array_equal(trained.predict_proba(frame).to_numpy(), estimator.predict_proba(frame))
    for row in frame.head(200).to_dict("records"):
        assert trained.predict(row) == estimator.predict(pd.DataFrame([row]))[0]


def problems(exc: InvalidInput) -> set[tuple[object, object, str]]:
    return {(e.row, e.field, e.problem) for e in exc.errors}


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        ({k: v for k, v in SEED_ROW.items() if k != "petal_width"}, (0, "petal_width", errors.MISSING)),
        ({**SEED_ROW, "colour": 1.0}, (0, "colour", errors.UNKNOWN)),
        ({**SEED_ROW, "sepal_width": "3.2"}, (0, "sepal_width", errors.NOT_A_NUMBER)),
        ({**SEED_ROW, "sepal_width": [3.2]}, (0, "sepal_width", errors.NOT_A_NUMBER)),
        ({**SEED_ROW, "petal_length": float("nan")}, (0, "petal_length", errors.NOT_FINITE)),
        ({**SEED_ROW, "petal_length": float("-inf")}, (0, "petal_length", errors.NOT_FINITE)),
        ({**SEED_ROW, "petal_length": True}, (0, "petal_length", errors.BOOLEAN)),
        ({**SEED_ROW, "petal_length": None}, (0, "petal_length", errors.NULL)),
        ([5.0, 3.2, None, 0.3], (0, "petal_length", errors.NULL)),
        ([SEED_ROW, {**SEED_ROW, "sepal_length": "x"}], (1, "sepal_length", errors.NOT_A_NUMBER)),
        (pd.DataFrame([{**SEED_ROW, "petal_width": np.nan}]), (0, "petal_width", errors.NOT_FINITE)),
        (pd.DataFrame([SEED_ROW]).drop(columns="sepal_width"), (None, "sepal_width", errors.MISSING)),
    ],
    ids=[
        "missing",
        "unknown",
        "string",
        "list",
        "nan",
        "inf",
        "boolean",
        "null",
        "null-in-list",
        "second-row",
        "frame-nan",
        "frame-missing",
    ],
)
def test_invalid_input_names_field_and_problem(trained: Modeler, x: object, expected: tuple) -> None:
    with pytest.raises(InvalidInput) as caught:
        trained.predict(x)
    assert expected in problems(caught.value)
    assert str(expected[1]) in str(caught.value)


def test_every_problem_is_reported_at_once(trained: Modeler) -> None:
    with pytest.raises(InvalidInput) as caught:
        trained.predict({"sepal_length": True, "sepal_width": "x", "petal_length": None, "extra": 1})
    assert problems(caught.value) == {
        (0, "sepal_length", errors.BOOLEAN),
        (0, "sepal_width", errors.NOT_A_NUMBER),
        (0, "petal_length", errors.NULL),
        (0, "petal_width", errors.MISSING),
        (0, "extra", errors.UNKNOWN),
    }


@pytest.mark.parametrize("x", [[1.0, 2.0, 3.0], [], "5,3,1,0", 42])
def test_wrong_shapes_are_invalid_input(trained: Modeler, x: object) -> None:
    with pytest.raises(InvalidInput):
        trained.predict(x)


def test_custom_dataframe_sets_the_features(model_dir: Path) -> None:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"width": rng.uniform(0, 1, 60), "height": rng.uniform(0, 1, 60)})
    frame["label"] = np.where(frame["width"] > 0.5, "wide", "narrow")
    modeler = Modeler(model_dir, data=frame, target="label", max_depth=2)
    assert modeler.predict({"width": 0.9, "height": 0.1}) == "wide"
    assert modeler.features == ("width", "height")
    assert modeler.metadata["params"]["max_depth"] == 2
    with pytest.raises(InvalidInput, match="sepal_length"):
        modeler.predict(SEED_ROW)


def test_csv_data_and_bad_target(tmp_path: Path) -> None:
    csv = tmp_path / "iris.csv"
    iris_frame().to_csv(csv, index=False)
    assert Modeler(tmp_path / "m", data=csv).predict(SEED_LIST) == "setosa"
    with pytest.raises(errors.DataError, match="target column 'kind'"):
        Modeler(tmp_path / "n", data=csv, target="kind").fit()


def test_unknown_tree_parameter_is_rejected_at_construction() -> None:
    with pytest.raises(TypeError, match="max_dept"):
        Modeler(max_dept=3)


def test_no_temp_files_are_left_and_stray_ones_are_removed(trained: Modeler, model_dir: Path) -> None:
    (model_dir / VERSIONS_DIR / ".tmp-killed").mkdir()
    (model_dir / ".tmp-pointer").write_text("half")
    trained.fit()
    leftovers = [p.name for p in model_dir.rglob(".tmp-*")]
    assert leftovers == []
    assert len(saved_versions(model_dir)) == 2


def test_eight_processes_on_an_empty_dir_train_exactly_once(model_dir: Path, tmp_path: Path) -> None:
    # Each process imports everything, says it is ready, then waits for one shared "go", so the
    # eight first predictions really start together (imports alone take longer than a training).
    go = tmp_path / "go"
    script = textwrap.dedent(
        f"""
        import os, sys, time
        sys.path.insert(0, {str(REPO)!r})
        from modeler.modeler import Modeler
        m = Modeler({str(model_dir)!r})
        open(os.path.join({str(tmp_path)!r}, "ready-%d" % os.getpid()), "w").close()
        while not os.path.exists({str(go)!r}):
            time.sleep(0.001)
        print(m.predict([5.0, 3.2, 1.5, 0.3]), m.version)
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    go.touch()
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, [err for _, err in outputs]
    versions = saved_versions(model_dir)
    assert len(versions) == 1
    assert {out.strip() for out, _ in outputs} == {f"setosa {versions[0]}"}


def test_modeler_imports_and_predicts_without_flask(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["flask"] = None  # any import of flask now fails
        sys.path.insert(0, {str(REPO)!r})
        from modeler.modeler import Modeler
        print(Modeler({str(tmp_path / "m")!r}).predict([5.0, 3.2, 1.5, 0.3]))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "setosa"
