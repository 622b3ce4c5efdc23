"""The restricted loader reads real models in every format and refuses files that would run code.

Each malicious file is first shown to be live: a plain ``pickle.loads`` (or skops with the file's
own list of types as trusted, MLflow's mistake) creates the marker file. Then
``load_estimator`` refuses it, naming the type, and the marker never appears. The payloads that
would corrupt memory rather than run a command are loaded in a child process, so that a failure
is a failed test, not a crashed suite.
"""

from __future__ import annotations

import copyreg
import functools
import operator
import os
import pickle
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import sklearn
import skops.io as sio
from numpy._core.numeric import _frombuffer
from sklearn.compose import ColumnTransformer
from sklearn.datasets import load_iris, make_regression
from sklearn.ensemble import (
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from modeler.load_errors import IncompatibleModelFile, InvalidTrust, ModelFileError, UntrustedType
from modeler.safe_load import TypePolicy, load_estimator
from tests.support import REPO
from tests.trusted_helpers import ShiftTransformer, WritesOnLoad

SHIFT = "tests.trusted_helpers.ShiftTransformer"
WRITES = "tests.trusted_helpers.WritesOnLoad"


def _iris() -> tuple[np.ndarray, np.ndarray]:
    return load_iris(return_X_y=True)


def _regression() -> tuple[np.ndarray, np.ndarray]:
    return make_regression(n_samples=300, n_features=5, noise=5.0, random_state=0)


def _mixed() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"color": rng.choice(["red", "green", "blue"], 300), "a": rng.normal(size=300), "b": rng.normal(size=300)}
    )
    return frame, ((frame["a"] + (frame["color"] == "red")) > 0.3).astype(int).to_numpy()


def _column_pipeline() -> Pipeline:
    columns = ColumnTransformer([("text", OneHotEncoder(), ["color"]), ("numbers", StandardScaler(), ["a", "b"])])
    return Pipeline([("columns", columns), ("model", LogisticRegression())])


MODELS: dict[str, tuple[Callable[[], object], Callable[[], tuple]]] = {
    "decision-tree-classifier": (lambda: DecisionTreeClassifier(random_state=0), _iris),
    "decision-tree-regressor": (lambda: DecisionTreeRegressor(random_state=0), _regression),
    "random-forest-classifier": (lambda: RandomForestClassifier(n_estimators=10, random_state=0), _iris),
    "random-forest-regressor": (lambda: RandomForestRegressor(n_estimators=10, random_state=0), _regression),
    "gradient-boosting-classifier": (lambda: GradientBoostingClassifier(n_estimators=10, random_state=0), _iris),
    "gradient-boosting-regressor": (lambda: GradientBoostingRegressor(n_estimators=10, random_state=0), _regression),
    "hist-gradient-boosting-classifier": (lambda: HistGradientBoostingClassifier(max_iter=10), _iris),
    "hist-gradient-boosting-regressor": (lambda: HistGradientBoostingRegressor(max_iter=10), _regression),
    "logistic-regression": (lambda: LogisticRegression(max_iter=1000), _iris),
    "column-pipeline": (_column_pipeline, _mixed),
    "k-neighbors": (lambda: KNeighborsClassifier(), _iris),
    "svc": (lambda: SVC(), _iris),
}


def _dump_joblib(estimator: object, path: Path) -> None:
    joblib.dump(estimator, path)


def _dump_joblib_compressed(estimator: object, path: Path) -> None:
    joblib.dump(estimator, path, compress=3)


def _dump_pickle(estimator: object, path: Path) -> None:
    path.write_bytes(pickle.dumps(estimator))


FORMATS: dict[str, tuple[str, Callable[[object, Path], None]]] = {
    "joblib": (".joblib", _dump_joblib),
    "joblib-compress-3": (".joblib", _dump_joblib_compressed),
    "pickle": (".pkl", _dump_pickle),
    "skops": (".skops", sio.dump),
}


@pytest.fixture(scope="module", params=list(MODELS))
def fitted(request) -> tuple[object, object]:
    """A fitted model and the rows to compare on."""
    make, data = MODELS[request.param]
    X, y = data()
    return make().fit(X, y), X


def _answers(estimator, X) -> list[np.ndarray]:
    methods = ("predict", "predict_proba", "decision_function")
    return [getattr(estimator, name)(X) for name in methods if hasattr(estimator, name)]


@pytest.mark.parametrize("file_format", list(FORMATS))
def test_every_format_loads_and_predicts_as_the_original(fitted, file_format, tmp_path) -> None:
    estimator, X = fitted
    suffix, dump = FORMATS[file_format]
    path = tmp_path / f"model{suffix}"
    dump(estimator, path)
    loaded = load_estimator(path)
    assert type(loaded) is type(estimator)
    for expected, got in zip(_answers(estimator, X), _answers(loaded, X), strict=True):
        assert np.array_equal(expected, got)


def test_older_pickle_protocols_and_numpy_1_names_load(tmp_path) -> None:
    estimator = RandomForestClassifier(n_estimators=3, random_state=0).fit(*_iris())
    protocol2 = pickle.dumps(estimator, protocol=2)
    assert b"numpy._core.multiarray\n" in protocol2  # protocol 2 names globals as text lines
    path = tmp_path / "numpy1.pkl"
    # numpy 1 wrote numpy.core; numpy 2 warns (an error here) when that name is imported.
    path.write_bytes(protocol2.replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n"))
    assert np.array_equal(load_estimator(path).predict_proba(_iris()[0]), estimator.predict_proba(_iris()[0]))


def test_a_numeric_dataframe_loads(tmp_path) -> None:
    # Integer labels: pandas 3 pickles string columns through pyarrow, which is not admitted.
    frame = pd.DataFrame({0: [1.0, 2.0], 1: [3, 4]})
    path = tmp_path / "frame.pkl"
    path.write_bytes(pickle.dumps(frame))
    pd.testing.assert_frame_equal(load_estimator(path), frame)


def test_a_numpy_ufunc_in_a_function_transformer_loads(tmp_path) -> None:
    X, y = _iris()
    model = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=1000)).fit(X, y)
    for suffix, dump in (FORMATS["pickle"], FORMATS["skops"]):
        path = tmp_path / f"ufunc{suffix}"
        dump(model, path)
        assert np.array_equal(load_estimator(path).predict(X), model.predict(X))


# --- the operator's trust ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shifted_pipeline() -> tuple[Pipeline, np.ndarray]:
    X, y = _iris()
    return make_pipeline(ShiftTransformer(2.0), LogisticRegression(max_iter=1000)).fit(X, y), X


@pytest.mark.parametrize("file_format", ["joblib", "pickle", "skops"])
def test_trust_admits_exactly_the_named_class(shifted_pipeline, file_format, tmp_path) -> None:
    model, X = shifted_pipeline
    suffix, dump = FORMATS[file_format]
    path = tmp_path / f"shifted{suffix}"
    dump(model, path)
    with pytest.raises(UntrustedType, match=SHIFT) as refused:
        load_estimator(path)
    assert refused.value.type_name == SHIFT
    with pytest.raises(UntrustedType, match=SHIFT):
        load_estimator(path, trust=[WRITES])  # another name does not stand in for it
    loaded = load_estimator(path, trust=[SHIFT])
    assert isinstance(loaded.steps[0][1], ShiftTransformer)
    assert np.array_equal(loaded.predict_proba(X), model.predict_proba(X))


@pytest.mark.parametrize("name", ["ShiftTransformer", "tests..x", "", "tests.trusted helpers.X"])
def test_a_trusted_name_must_be_dotted(name) -> None:
    with pytest.raises(InvalidTrust, match="dotted name"):
        load_estimator("model.joblib", trust=[name])


# --- the rule itself -------------------------------------------------------------------------------

REFUSED_NAMES = [
    # Functions of the allowed packages that read, write or load files, or evaluate strings.
    "numpy.load",
    "numpy.fromfile",
    "numpy.save",
    "numpy.frompyfunc",
    "numpy.lib.npyio.NpzFile",
    "numpy.lib._datasource.DataSource",
    "numpy.ctypeslib.load_library",
    "numpy.memmap",  # a numpy array class, but its constructor creates files
    "numpy.vectorize",  # a numpy class, but not a data type
    "pandas.read_pickle",
    "pandas.io.pickle.read_pickle",
    "pandas.HDFStore",
    "pandas.eval",
    "scipy.io.loadmat",
    "sklearn.utils._joblib.load",
    "sklearn.utils._testing.TempMemmap",
    "sklearn.datasets.fetch_openml",
    "sklearn.base.clone",  # a scikit-learn function: only classes are admitted
    # Everything outside the allowed packages.
    "joblib.load",
    "joblib.numpy_pickle_compat.NDArrayWrapper",  # joblib < 0.10 arrays: a companion file's path
    "builtins.eval",
    "builtins.exec",
    "builtins.getattr",
    "builtins.__import__",
    "builtins.open",
    "builtins.compile",
    "builtins.type",
    "posix.system",
    "os.system",
    "subprocess.Popen",
    "sys.modules",
    "importlib.import_module",
    "operator.attrgetter",
    "functools.partial",
    "copyreg.__newobj__",
    "types.FunctionType",
]


@pytest.mark.parametrize("name", REFUSED_NAMES)
def test_the_rule_refuses_what_touches_the_system(name) -> None:
    module, _, attr = name.rpartition(".")
    with pytest.raises(UntrustedType) as refused:
        TypePolicy().resolve(module, attr)
    assert refused.value.type_name == name


@pytest.mark.parametrize(
    ("name", "callable_"),
    [
        ("sklearn.linear_model._logistic.LogisticRegression", True),
        ("sklearn.tree._tree.Tree", True),
        ("numpy.dtype", True),
        ("numpy.float64", True),
        ("numpy.ndarray", False),  # rebuilt by numpy's helpers only
        ("numpy.log1p", False),  # a value (FunctionTransformer's func), never called while loading
        ("numpy._core.multiarray._reconstruct", True),
        ("numpy.core.multiarray._reconstruct", True),  # numpy 1's name for it
        ("scipy.sparse._csr.csr_matrix", True),
        ("pandas.DataFrame", True),
        ("copyreg._reconstructor", True),
        ("builtins.set", True),
    ],
)
def test_the_rule_admits_the_types_of_fitted_models(name, callable_) -> None:
    module, _, attr = name.rpartition(".")
    _, may_call = TypePolicy().resolve(module, attr)
    assert may_call is callable_


def test_a_refused_module_is_never_imported(capsys) -> None:
    assert "this" not in sys.modules  # importing `this` prints the Zen of Python: code that runs
    with pytest.raises(UntrustedType, match=r"this\.s"):
        TypePolicy().resolve("this", "s")
    assert "this" not in sys.modules
    assert capsys.readouterr().out == ""


# --- malicious files ------------------------------------------------------------------------------


class Reduce:
    """Pickles as ``func(*args)``: what an attacker's object does in ``__reduce__``."""

    def __init__(self, func: Callable, *args: object) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args

    def __call__(self, *args: object) -> None:
        """Only so that pickle accepts one of these as the function of another (a gadget chain)."""
        raise NotImplementedError


def _touch(marker: Path) -> str:
    return f"touch {marker}"


def _opens(marker: Path) -> str:
    return f"open({str(marker)!r}, 'w').close()"


def _plain_pickle_that_touches(marker: Path) -> Path:
    inner = marker.with_name("inner.pkl")
    inner.write_bytes(pickle.dumps(Reduce(os.system, _touch(marker))))
    return inner


def _legal_estimator_hiding(marker: Path) -> object:
    estimator = LogisticRegression(max_iter=1000).fit(*_iris())
    estimator.notes_ = {"hidden": [Reduce(os.system, _touch(marker))]}
    return estimator


def _attrgetter_gadget(marker: Path) -> object:
    """``attrgetter("tofile")(array)(path)``: a method of an allowed type, fetched by name."""
    return Reduce(Reduce(operator.attrgetter("tofile"), np.arange(3)), str(marker))


# Each payload: (what pickle names first, the object to pickle given the marker path).
PAYLOADS: dict[str, tuple[str, Callable[[Path], object]]] = {
    "os.system": (f"{os.system.__module__}.system", lambda m: Reduce(os.system, _touch(m))),
    "subprocess.Popen": ("subprocess.Popen", lambda m: Reduce(subprocess.Popen, ["touch", str(m)])),
    "builtins.eval": ("builtins.eval", lambda m: Reduce(eval, _opens(m))),
    "builtins.exec": ("builtins.exec", lambda m: Reduce(exec, _opens(m))),
    "open-for-writing": ("io.open", lambda m: Reduce(open, str(m), "w")),
    "numpy.load": ("numpy.load", lambda m: Reduce(np.load, str(_plain_pickle_that_touches(m)), None, True)),
    "pandas.read_pickle": ("pandas.read_pickle", lambda m: Reduce(pd.read_pickle, str(_plain_pickle_that_touches(m)))),
    "inside-a-legal-estimator": (f"{os.system.__module__}.system", _legal_estimator_hiding),
    "class-of-another-module": (WRITES, lambda m: WritesOnLoad(str(m))),
    "inside-an-object-array": (
        f"{os.system.__module__}.system",
        lambda m: {"weights": np.array([Reduce(os.system, _touch(m))], dtype=object)},
    ),
    "copyreg-reconstructor": (
        "subprocess.Popen",
        lambda m: Reduce(copyreg._reconstructor, subprocess.Popen, subprocess.Popen, ["touch", str(m)]),
    ),
    "functools.partial": ("functools.partial", lambda m: Reduce(functools.partial(os.system, _touch(m)))),
    "operator.attrgetter": ("operator.attrgetter", _attrgetter_gadget),
}


def _run_plainly(payload: bytes) -> None:
    """What ``pickle.loads`` does with the payload, tidied up so that no resource leaks."""
    result = pickle.loads(payload)
    if isinstance(result, subprocess.Popen):
        result.wait()
    elif hasattr(result, "close"):
        result.close()


@pytest.mark.parametrize("case", list(PAYLOADS))
@pytest.mark.parametrize("suffix", [".pkl", ".joblib"])
def test_a_file_that_would_run_code_is_refused_before_it_runs(case, suffix, tmp_path) -> None:
    named, build = PAYLOADS[case]
    marker = tmp_path / "marker"
    payload = pickle.dumps(build(marker))
    _run_plainly(payload)
    assert marker.exists(), "the payload is not live: this test would prove nothing"
    marker.unlink()

    path = tmp_path / f"model{suffix}"
    if suffix == ".joblib":
        joblib.dump(build(marker), path)
    else:
        path.write_bytes(payload)
    with pytest.raises(UntrustedType) as refused:
        load_estimator(path)
    assert refused.value.type_name == named
    assert named in str(refused.value)
    assert not marker.exists()


def test_a_skops_file_is_not_trusted_for_what_it_lists_itself(tmp_path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "model.skops"
    sio.dump({"model": LogisticRegression(), "extra": WritesOnLoad(str(marker))}, path)
    sio.load(path, trusted=sio.get_untrusted_types(file=path))  # the file's own list: it runs
    assert marker.exists()
    marker.unlink()
    with pytest.raises(UntrustedType, match=WRITES):
        load_estimator(path)
    assert not marker.exists()


def test_a_skops_function_outside_the_rule_is_refused(tmp_path) -> None:
    path = tmp_path / "model.skops"
    sio.dump(FunctionTransformer(func=os.system), path)
    with pytest.raises(UntrustedType, match=f"{os.system.__module__}.system"):
        load_estimator(path)


def test_a_dotted_name_cannot_walk_attributes(tmp_path) -> None:
    path = tmp_path / "model.pkl"
    module, name = b"sklearn.base", b"BaseEstimator.__init__"
    # protocol 4: SHORT_BINUNICODE module, SHORT_BINUNICODE name, STACK_GLOBAL, STOP.
    path.write_bytes(b"\x80\x04\x8c" + bytes([len(module)]) + module + b"\x8c" + bytes([len(name)]) + name + b"\x93.")
    with pytest.raises(UntrustedType, match=r"sklearn\.base\.BaseEstimator\.__init__"):
        load_estimator(path)


def test_an_instance_is_never_called(tmp_path) -> None:
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(Reduce(np.log1p, 1.0)))  # np.log1p is admitted, as a value
    with pytest.raises(UntrustedType, match=r"numpy\.log1p: it may be read as a value but not called"):
        load_estimator(path)


class ForgedObjectDtype:
    """Pickles as a dtype with an object field whose state says it holds no objects."""

    def __reduce__(self):
        real = np.dtype([("a", "O")])
        state = list(real.__reduce__()[2])
        state[-1] = 0  # the flags: no object, no list pickle, no zeroing
        return np.dtype, ("V8", False, True), tuple(state)


# sklearn._loss.link.IdentityLink with BUILD state (None, {"inverse": None}): setattr on the class.
PATCHES_A_CLASS = b"\x80\x02csklearn._loss.link\nIdentityLink\nN}X\x07\x00\x00\x00inverseNs\x86b."

# Payloads that corrupt memory or patch the process rather than run a command: each is loaded in
# a child, which prints what it got. (named, object to pickle or raw bytes, suffix)
CHILD_PAYLOADS: dict[str, tuple[str, object, str]] = {
    # numpy.ndarray(shape, object dtype, buffer): file bytes become object pointers.
    "ndarray-from-a-buffer": ("numpy.ndarray", Reduce(np.ndarray, (1,), np.dtype("O"), bytearray(b"\x41" * 8)), ".pkl"),
    # The same inside an object array as joblib writes it: joblib reads that part with a plain
    # Unpickler that shares only find_class, not the call rule.
    "ndarray-from-a-buffer-in-a-joblib-object-array": (
        "numpy.ndarray",
        np.array([Reduce(np.ndarray, (1,), np.dtype("O"), bytearray(b"\x41" * 8))], dtype=object),
        ".joblib",
    ),
    # A forged dtype handed to numpy's own (admitted) helper for protocol 5 arrays.
    "forged-dtype-flags": ("numpy.dtype", Reduce(_frombuffer, b"\x41" * 8, ForgedObjectDtype(), (1,), "C"), ".pkl"),
    "state-set-on-a-class": ("sklearn._loss.link.IdentityLink", PATCHES_A_CLASS, ".pkl"),
}


@pytest.mark.parametrize("case", list(CHILD_PAYLOADS))
def test_a_file_that_would_forge_pointers_or_patch_a_class_is_refused(case, tmp_path) -> None:
    named, payload, suffix = CHILD_PAYLOADS[case]
    path = tmp_path / f"model{suffix}"
    if isinstance(payload, bytes):
        path.write_bytes(payload)
    elif suffix == ".joblib":
        joblib.dump(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload))
    script = (
        "import sys\n"
        "from modeler.safe_load import TypePolicy, load_estimator\n"
        "from modeler.load_errors import UntrustedType\n"
        "try:\n"
        "    print(repr(load_estimator(sys.argv[1])))\n"
        "except UntrustedType as exc:\n"
        "    print('refused', exc.type_name)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"the child died ({done.returncode}): {done.stderr[-500:]}"
    assert done.stdout.strip() == f"refused {named}"


# --- files that are not models ---------------------------------------------------------------------


def test_a_file_pickled_by_another_scikit_learn_is_incompatible(tmp_path) -> None:
    data = pickle.dumps(DecisionTreeClassifier().fit(*_iris()))
    running = sklearn.__version__.encode()
    older = b"0." + b"9" * (len(running) - 2)  # same length: the pickle's framing stays valid
    assert data.count(running) >= 1
    path = tmp_path / "old.pkl"
    path.write_bytes(data.replace(running, older))
    with pytest.raises(IncompatibleModelFile, match="another scikit-learn"):
        load_estimator(path)


def test_damaged_and_unknown_files_give_a_model_file_error_without_the_path(tmp_path) -> None:
    data = pickle.dumps(LogisticRegression(max_iter=1000).fit(*_iris()))
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(data[: len(data) // 2])
    for path in (truncated, tmp_path / "missing.joblib", tmp_path / "model.onnx"):
        with pytest.raises(ModelFileError) as failed:
            load_estimator(path)
        assert str(tmp_path) not in str(failed.value)
