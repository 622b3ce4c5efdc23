"""The Modeler: load, fit and predict for a scikit-learn DecisionTree, with saved versions.

Usable on its own, without Flask::

    from modeler.modeler import Modeler
    Modeler().predict([5.0, 3.2, 1.5, 0.3])   # 'setosa'
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import platform
import secrets
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property
from inspect import signature
from pathlib import Path

import filelock
import joblib
import numpy as np
import pandas as pd
import sklearn
from sklearn.model_selection import train_test_split
from sklearn.tree import DecisionTreeClassifier

from modeler.compiled_tree import CompiledTree
from modeler.data import DataSource, describe_source, load_training_data
from modeler.errors import DataError, ModelIntegrityError, ModelNotReady, VersionNotFound
from modeler.explanation import Explanation, explain_row
from modeler.ranges import Range, RangeWarning, out_of_range, training_ranges
from modeler.store import ModelStore
from modeler.validation import Rows, to_rows

# Anchored to the code, not the working directory: <repository>/models.
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "models"
HOLDOUT_FRACTION = 0.2
# Below this many rows a holdout says nothing; the model then trains on everything.
MIN_ROWS_FOR_HOLDOUT = 10
TREE_PARAMS = frozenset(signature(DecisionTreeClassifier).parameters) - {"random_state"}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    """One loaded, verified version: the estimator, its metadata and its compiled tree."""

    version: str
    metadata: dict
    estimator: DecisionTreeClassifier = field(repr=False)
    tree: CompiledTree = field(repr=False)

    @property
    def features(self) -> tuple[str, ...]:
        """Feature names in the order the model expects them."""
        return tuple(self.metadata["feature_names"])

    @cached_property
    def ranges(self) -> tuple[Range, ...]:
        """Training ``(min, max)`` per feature, in model order."""
        return training_ranges(self.metadata, self.features)


@dataclass(frozen=True)
class Inference:
    """The outcome of one :meth:`Modeler.infer` call, tied to the version that computed it."""

    version: str
    features: tuple[str, ...]
    rows: Rows = field(repr=False)
    single: bool
    leaves: np.ndarray
    tree: CompiledTree = field(repr=False)
    ranges: tuple[Range, ...] = field(default=(), repr=False)

    @property
    def classes(self) -> tuple[str, ...]:
        """Class names, in the order of the probability columns."""
        return self.tree.classes

    @property
    def labels(self) -> list[str]:
        """Predicted class per row."""
        return [self.tree.leaf_labels[leaf] for leaf in self.leaves.tolist()]

    @property
    def probabilities(self) -> np.ndarray:
        """Class probabilities, one row per input row."""
        return self.tree.leaf_proba[self.leaves]

    def probability_dicts(self) -> list[dict[str, float]]:
        """Class probabilities per row as ``{class: probability}`` dicts."""
        return [dict(self.tree.leaf_proba_dicts[leaf]) for leaf in self.leaves.tolist()]

    def out_of_range(self) -> dict[int, list[RangeWarning]]:
        """``{row index: warnings}`` for rows with a feature outside its training range."""
        return out_of_range(self.rows, self.features, self.ranges)

    def explanations(self) -> list[Explanation]:
        """The decision path of each row, in input order."""
        return [explain_row(self.tree, self.features, row) for row in self.rows]


def _json_safe(value: object) -> object:
    """Estimator parameters as JSON values (numpy scalars and odd objects become plain ones)."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def new_version_id(now: datetime) -> str:
    """A sortable, unique version id such as ``20261122T021530Z-3f9a1c``."""
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


class Modeler:
    """Owns load, fit and predict for one DecisionTreeClassifier and its saved versions.

    ``data`` is None for scikit-learn's bundled Iris, or a CSV path or DataFrame holding a
    ``target`` column; extra keyword arguments are DecisionTreeClassifier parameters. Nothing is
    read or trained until first needed: the first prediction loads the current saved version, or
    trains and saves one when none exists (``lazy_train``), exactly once across threads and
    processes sharing ``model_dir``.
    """

    def __init__(
        self,
        model_dir: str | os.PathLike | None = None,
        data: DataSource = None,
        target: str = "species",
        random_state: int | None = 0,
        *,
        lazy_train: bool = True,
        lock_timeout: float = 120.0,
        poll_interval: float = 0.5,
        **tree_params: object,
    ) -> None:
        unknown = sorted(set(tree_params) - TREE_PARAMS)
        if unknown:
            raise TypeError(
                f"unknown DecisionTreeClassifier parameter(s): {', '.join(unknown)}; "
                f"valid: {', '.join(sorted(TREE_PARAMS))}"
            )
        self.model_dir = Path(model_dir) if model_dir is not None else DEFAULT_MODEL_DIR
        self.data = data
        self.target = target
        self.random_state = random_state
        self.tree_params = dict(tree_params)
        self.lazy_train = lazy_train
        self.lock_timeout = lock_timeout
        self.poll_interval = poll_interval
        self.store = ModelStore(self.model_dir)
        self._model: LoadedModel | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._next_poll = 0.0
        self._state_lock = threading.RLock()
        # A lock held by another thread at fork time would stay held forever in the child.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (m := ref()) is not None and m._after_fork())

    def __repr__(self) -> str:
        return f"Modeler(model_dir={str(self.model_dir)!r}, version={self._model and self._model.version!r})"

    def _after_fork(self) -> None:
        self._state_lock = threading.RLock()

    # -- state ---------------------------------------------------------------------------

    @property
    def is_ready(self) -> bool:
        """True once a model is loaded in this process (never loads or trains by itself)."""
        return self._model is not None

    @property
    def metadata(self) -> dict:
        """Metadata of the current version (loads or trains it first if needed)."""
        return copy.deepcopy(self.ensure_ready().metadata)

    @property
    def version(self) -> str:
        """Id of the version in use (loads or trains it first if needed)."""
        return self.ensure_ready().version

    @property
    def features(self) -> tuple[str, ...]:
        """Feature names in model order (loads or trains the model first if needed)."""
        return self.ensure_ready().features

    def versions(self) -> list[dict]:
        """Metadata of every saved version, oldest first, each with ``current`` set."""
        current = self.store.current_version()
        return [{**m, "current": m.get("version") == current} for m in self.store.list_versions()]

    # -- load / fit ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _writer_lock(self) -> Iterator[None]:
        lock = self.store.lock(self.lock_timeout)
        try:
            lock.acquire()
        except filelock.Timeout as exc:
            raise ModelNotReady(
                f"another process has held the training lock {lock.lock_file} for over {self.lock_timeout:g} s"
            ) from exc
        try:
            self.store.remove_stray_temp()
            yield
        finally:
            lock.release()

    def _use(self, model: LoadedModel, stamp: tuple[int, int, int] | None) -> LoadedModel:
        self._model, self._stamp = model, stamp
        self._next_poll = time.monotonic() + self.poll_interval
        return model

    def _load_version(self, version: str) -> LoadedModel:
        try:
            estimator, metadata = self.store.load(version)
        except VersionNotFound as exc:  # the pointer names a version that is gone: nothing to serve
            raise ModelIntegrityError(f"the current pointer names version {version!r}, which is missing") from exc
        if not isinstance(estimator, DecisionTreeClassifier):
            raise ModelNotReady(f"version {version!r} holds a {type(estimator).__name__}, not a DecisionTreeClassifier")
        log.info("loaded model version %s from %s", version, self.model_dir)
        return LoadedModel(version, metadata, estimator, CompiledTree(estimator))

    def load(self) -> Modeler:
        """Load the current saved version, checking its sha256 and scikit-learn version first."""
        with self._state_lock:
            stamp = self.store.pointer_stamp()
            version = self.store.current_version()
            if version is None:
                raise ModelNotReady(f"no saved model in {self.model_dir}: call fit() or run `python -m mldeploy train`")
            self._use(self._load_version(version), stamp)
        return self

    def fit(self) -> Modeler:
        """Train a new version on the configured data, save it, make it current; returns self."""
        with self._state_lock, self._writer_lock():
            self._fit_locked()
        return self

    def _fit_locked(self) -> LoadedModel:
        X, y = load_training_data(self.data, self.target)
        estimator, holdout, X_train = self._train(X, y)
        now = datetime.now(UTC)
        metadata = {
            "version": new_version_id(now),
            "trained_at": now.isoformat(timespec="microseconds"),
            "estimator": "sklearn.tree.DecisionTreeClassifier",
            "params": _json_safe(estimator.get_params()),
            "target": self.target,
            "feature_names": [str(f) for f in estimator.feature_names_in_],
            "feature_ranges": {
                str(name): [float(X_train[name].min()), float(X_train[name].max())] for name in X_train.columns
            },
            "classes": [str(c) for c in estimator.classes_],
            "holdout": holdout,
            "data": {"source": describe_source(self.data), "rows": len(X)},
            "tree": {"depth": int(estimator.get_depth()), "leaves": int(estimator.get_n_leaves())},
            "environment": {
                "python": platform.python_version(),
                "sklearn": sklearn.__version__,
                "numpy": np.__version__,
                "joblib": joblib.__version__,
                "pandas": pd.__version__,
            },
        }
        metadata = self.store.save(estimator, metadata)
        self.store.activate(metadata["version"])
        log.info("trained and saved model version %s in %s", metadata["version"], self.model_dir)
        tree = CompiledTree(estimator)
        return self._use(LoadedModel(metadata["version"], metadata, estimator, tree), self.store.pointer_stamp())

    def _train(self, X: pd.DataFrame, y: pd.Series) -> tuple[DecisionTreeClassifier, dict, pd.DataFrame]:
        """Fit on a stratified split and score the held-out part; the saved model is this fit."""
        holdout: dict = {"fraction": HOLDOUT_FRACTION, "accuracy": None, "stratified": False}
        X_train, y_train = X, y
        if len(X) >= MIN_ROWS_FOR_HOLDOUT:
            stratify = y if y.value_counts().min() >= 2 else None
            try:
                X_train, X_test, y_train, y_test = train_test_split(
                    X, y, test_size=HOLDOUT_FRACTION, random_state=self.random_state, stratify=stratify
                )
            except ValueError:  # too few rows per class for a stratified split
                stratify = None
                X_train, X_test, y_train, y_test = train_test_split(
                    X, y, test_size=HOLDOUT_FRACTION, random_state=self.random_state
                )
            holdout["stratified"] = stratify is not None
        estimator = DecisionTreeClassifier(random_state=self.random_state, **self.tree_params)
        try:
            estimator.fit(X_train, y_train)
        except ValueError as exc:  # e.g. bad tree parameters
            raise DataError(f"training failed: {exc}") from exc
        if X_train is not X:
            holdout["accuracy"] = float(np.mean(estimator.predict(X_test) == y_test.to_numpy()))
            holdout["train_rows"], holdout["test_rows"] = len(X_train), len(X_test)
        else:
            holdout["train_rows"], holdout["test_rows"] = len(X), 0
        return estimator, holdout, X_train

    def ensure_ready(self) -> LoadedModel:
        """The loaded model: loads the current version, or trains one if none is saved and lazy."""
        model = self._model
        if model is not None:
            return model
        with self._state_lock:
            if self._model is not None:
                return self._model
            stamp = self.store.pointer_stamp()
            version = self.store.current_version()
            if version is None:
                if not self.lazy_train:
                    raise ModelNotReady(f"no saved model in {self.model_dir} and lazy training is off")
                with self._writer_lock():
                    # Checked again under the lock: another process may have trained meanwhile.
                    stamp = self.store.pointer_stamp()
                    version = self.store.current_version()
                    if version is None:
                        try:
                            return self._fit_locked()
                        except DataError as exc:  # lazy training that cannot work: not ready
                            raise ModelNotReady(f"cannot train a model: {exc}") from exc
            return self._use(self._load_version(version), stamp)

    def _current(self) -> LoadedModel:
        """The model for one call: follows the pointer, checking it at most every poll_interval."""
        model = self._model
        if model is None:
            return self.ensure_ready()
        now = time.monotonic()
        if now < self._next_poll:
            return model
        self._next_poll = now + self.poll_interval
        stamp = self.store.pointer_stamp()
        if stamp == self._stamp or stamp is None:
            return model
        with self._state_lock:
            version = self.store.current_version()
            if version is None or version == self._model.version:
                self._stamp = stamp
                return self._model
            try:
                return self._use(self._load_version(version), stamp)
            except ModelNotReady:
                # Keep serving the version we have; the next poll tries again.
                log.exception("cannot switch to model version %s; still serving %s", version, self._model.version)
                return self._model

    # -- predict -------------------------------------------------------------------------

    def infer(self, x: object) -> Inference:
        """Validate ``x`` and predict it; the result carries the version that computed it.

        Raises :class:`~modeler.errors.InvalidInput` naming every bad field.
        """
        model = self._current()
        rows, single = to_rows(x, model.features)
        if single:
            leaves = np.array([model.tree.leaf_of(rows[0])])
        else:
            leaves = model.tree.leaves(np.asarray(rows, dtype=np.float64))
        return Inference(model.version, model.features, rows, single, leaves, model.tree, model.ranges)

    def predict(self, x: object) -> str | list[str]:
        """Class label for one row (a dict or a list of numbers in feature order), or a list of
        labels for many rows (a list of rows, a 2-D array or a DataFrame), in input order."""
        result = self.infer(x)
        labels = result.labels
        return labels[0] if result.single else labels

    def explain(self, x: object) -> Explanation | list[Explanation]:
        """Why the model answers as it does: the root-to-leaf path of one row (the same forms as
        :meth:`predict`), or a list of paths for many rows. ``.as_dict()`` gives plain words and
        structured steps."""
        result = self.infer(x)
        explanations = result.explanations()
        return explanations[0] if result.single else explanations

    def predict_proba(self, x: object) -> dict[str, float] | list[dict[str, float]] | pd.DataFrame:
        """``{class: probability}`` for one row, a list of such dicts for many rows, or a DataFrame
        with one column per class (and the input's index) when given a DataFrame."""
        result = self.infer(x)
        if result.single:
            return result.probability_dicts()[0]
        if isinstance(x, pd.DataFrame):
            return pd.DataFrame(result.probabilities, columns=list(result.classes), index=x.index)
        return result.probability_dicts()
