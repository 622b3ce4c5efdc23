"""The Modeler: load, fit and predict for a scikit-learn DecisionTree, with saved versions.

A facade over three parts, one job each: the version store (:mod:`modeler.version_store`: the
pointer, policies, load, activate, retention, following the pointer), training
(:mod:`modeler.training`: data, split, holdout, metadata; the recipe in :mod:`modeler.recipe`)
and the predictor (:mod:`modeler.predictors`: what answers rows). Usable on its own, without
Flask::

    from modeler.modeler import Modeler
    Modeler().predict([5.0, 3.2, 1.5, 0.3])   # 'setosa'
"""

from __future__ import annotations

import copy
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from modeler.errors import DataError, FieldError, InvalidInput
from modeler.estimators import DEFAULT_ESTIMATOR, check_estimator_params, trainable
from modeler.inference import Inference
from modeler.loaded_model import LoadedModel
from modeler.predictors.base import PROBABILITIES, VALUE
from modeler.recipe import Recipe
from modeler.recording import PredictionRecorder
from modeler.training import TrainedVersion, train
from modeler.tree_params import check_tree_params, tree_param_names
from modeler.typed_validation import to_typed_rows
from modeler.validation import DecodedRecords, to_rows
from modeler.version_store import (
    DEFAULT_KEEP_VERSIONS,
    FAIL,
    LOADED,
    RETRAIN,
    TRAINED,
    VERSION_SUMMARY,
    Training,
    VersionStore,
    check_policy,
)

# scikit-learn, pandas and joblib are imported where a model is trained or unpickled, not here:
# serving a saved version needs only numpy (see modeler.store), which halves a server's start.
if TYPE_CHECKING:
    import pandas as pd

    from modeler.data import DataSource
    from modeler.store import ModelStore

# Importable from here, where scripts and the service have always found them.
__all__ = [
    "DEFAULT_MODEL_DIR",
    "LOADED",
    "TRAINED",
    "VERSION_SUMMARY",
    "Inference",
    "LoadedModel",
    "Modeler",
    "default_model_dir",
]

log = logging.getLogger(__name__)


def default_model_dir() -> Path:
    """The repository's ``models/`` when running from a checkout (editable installs too), else
    ``./models`` in the current folder: an installed package has no repository to write into."""
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / "pyproject.toml").is_file():
        return checkout / "models"
    return Path.cwd() / "models"


# Where models go when no model_dir is given (MLDEPLOY_MODEL_DIR for the service).
DEFAULT_MODEL_DIR = default_model_dir()


class Modeler:
    """Owns load, fit and predict for one DecisionTreeClassifier and its saved versions.

    ``data`` is a CSV path or DataFrame holding a ``target`` column, or None: then a training
    repeats the current version's recipe (its data and target), or uses scikit-learn's bundled
    Iris when there is no current version. ``estimator`` is what to train: a class name (any
    classifier or regressor of sklearn.tree/ensemble/linear_model/neighbors/svm) or an unfitted
    estimator or Pipeline; None trains the current recipe's, else a DecisionTreeClassifier.
    Extra keyword arguments are its parameters. Nothing is read or trained until first needed:
    the first prediction loads the current saved version, or trains and saves one when none
    exists (``lazy_train``), exactly once across threads and processes sharing ``model_dir``.

    When the current version cannot be loaded, ``on_corrupt`` (bad hash, truncated, unreadable)
    and ``on_incompatible`` (saved by another scikit-learn) choose between ``"retrain"`` (train a
    fresh version from its recipe and make it current) and ``"fail"`` (raise ModelNotReady saying
    why); both default to retrain when ``lazy_train`` is on. Each new version keeps at most
    ``keep_versions`` saved versions, never deleting the current one.

    ``prediction_log`` (e.g. ``mldeploy.monitoring.PredictionLog(path)``) records every row this
    Modeler predicts with its answer, under :meth:`infer`'s ``request_id`` or a new id.
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
        on_corrupt: str | None = None,
        on_incompatible: str | None = None,
        keep_versions: int = DEFAULT_KEEP_VERSIONS,
        estimator: str | object | None = None,
        prediction_log: PredictionRecorder | None = None,
        **tree_params: object,
    ) -> None:
        unknown = sorted(set(tree_params) - tree_param_names()) if tree_params and estimator is None else []
        if estimator is not None and tree_params:
            tree_params = check_estimator_params(estimator, tree_params)
        if unknown:
            raise TypeError(
                f"unknown DecisionTreeClassifier parameter(s): {', '.join(unknown)}; "
                f"valid: {', '.join(sorted(tree_param_names()))}"
            )
        if isinstance(keep_versions, bool) or not isinstance(keep_versions, int) or keep_versions < 1:
            raise ValueError(f"keep_versions must be an int of at least 1, not {keep_versions!r}")
        default_policy = RETRAIN if lazy_train else FAIL
        self.model_dir = Path(model_dir) if model_dir is not None else default_model_dir()
        self.data = data
        self.target = target
        self.random_state = random_state
        self.tree_params = dict(tree_params)
        # The estimator to train (a class name or an unfitted instance); None: the recipe's, else
        # a DecisionTreeClassifier.
        self.estimator = estimator
        if prediction_log is not None and not isinstance(prediction_log, PredictionRecorder):
            raise TypeError(f"prediction_log must have a record_inference method, not {prediction_log!r}")
        self.prediction_log = prediction_log
        self._versions = VersionStore(
            self.model_dir,
            self._training(self.tree_params, automatic=True),
            lazy_train=lazy_train,
            lock_timeout=lock_timeout,
            poll_interval=poll_interval,
            on_corrupt=check_policy("on_corrupt", on_corrupt, default_policy),
            on_incompatible=check_policy("on_incompatible", on_incompatible, default_policy),
            keep_versions=keep_versions,
        )
        self._versions.subscribe(self._on_version)

    def __repr__(self) -> str:
        loaded = self._versions.loaded
        return f"Modeler(model_dir={str(self.model_dir)!r}, version={loaded and loaded.version!r})"

    @property
    def store(self) -> ModelStore:
        """The model directory's files (:class:`modeler.store.ModelStore`)."""
        return self._versions.store

    def subscribe(self, callback: Callable[[str, str], None]) -> None:
        """Call ``callback(event, version)`` after each load (:data:`LOADED`) and each training
        (:data:`TRAINED`) of this Modeler; how a service counts them without the Modeler knowing."""
        self._versions.subscribe(callback)

    # -- state ---------------------------------------------------------------------------

    @property
    def is_ready(self) -> bool:
        """True once a model is loaded in this process (never loads or trains by itself)."""
        return self._versions.loaded is not None

    def ensure_ready(self) -> LoadedModel:
        """The current version, loaded: loads it, or trains one if none is saved and lazy (or if
        it is corrupt or incompatible and the policy says retrain); later calls follow the pointer
        (one ``stat`` per ``poll_interval``), so every reader sees a version another process made
        current."""
        return self._versions.current()

    @property
    def metadata(self) -> dict:
        """Metadata of the current version (loads or trains it first if needed)."""
        return copy.deepcopy(self.ensure_ready().metadata)

    @property
    def version(self) -> str:
        """Id of the current version (loads or trains it first if needed)."""
        return self.ensure_ready().version

    @property
    def features(self) -> tuple[str, ...]:
        """Feature names in model order (loads or trains the model first if needed)."""
        return self.ensure_ready().features

    def versions(self, summary: bool = False) -> list[dict]:
        """Metadata of every saved version, oldest first, each with ``current`` set; with
        ``summary``, only the keys in VERSION_SUMMARY."""
        return self._versions.versions(summary)

    def saved_version(self, version: str) -> LoadedModel:
        """One saved version, verified and loaded, without making it current (e.g. to export it)."""
        return self._versions.saved(version)

    def settings_conflict(self) -> str | None:
        """How this Modeler's ``data``/``target`` disagree with the version in use, in words (no
        directories); None when they agree, when no data was given (a training then repeats the
        version's recipe) or before a version is loaded. The version is served either way."""
        model = self._versions.loaded
        if model is None or self.data is None:
            return None
        recipe = Recipe.from_metadata(model.metadata)
        if recipe is None:
            difference = "it records no recipe (saved by an older mldeploy)"
        else:
            difference = recipe.differs_from(self.data, self.target)
            if difference is None:
                return None
        wanted = Recipe.of(self.data, self.target, {})
        return (
            f"the settings name training data {wanted.describe()} (target {wanted.target!r}) but the current "
            f"version {model.version} differs ({difference}): it is served as it is until a training replaces it"
        )

    def remove_stray_temp(self) -> list[Path]:
        """Delete what killed writers left behind (run at start). Skips a read-only directory and
        a lock held by a live writer, whose temp files are still being written."""
        return self._versions.remove_stray_temp()

    # -- load / fit / activate -----------------------------------------------------------

    def load(self) -> Modeler:
        """Load the current saved version and check it fully: sha256, scikit-learn version, and the
        estimator unpickled (an ``InconsistentVersionWarning`` is an error).

        Never trains: a corrupt or incompatible version raises whatever the policies say. The lazy
        path (first prediction, a server's warm-up) checks the hashes and the recorded version and
        serves from the saved tree arrays; it unpickles only when ``estimator`` is used.
        """
        self._versions.load()
        return self

    def fit(
        self,
        params: Mapping[str, object] | None = None,
        *,
        allow_schema_change: bool = False,
        estimator: str | object | None = None,
        **tree_params: object,
    ) -> Modeler:
        """Train a new version, save it, make it current; returns self.

        The data is the Modeler's ``data``, else the current version's recipe (else Iris).
        ``estimator`` (a class name, or an unfitted estimator or Pipeline) trains another model
        than the Modeler's (else the recipe's, else a DecisionTreeClassifier). ``params`` (a
        mapping, for parameters that come as data) and ``tree_params`` override the estimator's
        parameters for this version only; unknown or invalid ones raise InvalidInput naming each
        parameter (an unknown estimator name: the field ``estimator``). Data whose input fields differ from the current
        version's raises SchemaChange unless ``allow_schema_change``: clients would have to change.
        """
        given = {**(params or {}), **tree_params}
        if estimator is not None:  # another estimator: its own parameters, not the Modeler's
            params = check_estimator_params(estimator, given)
        elif self.estimator is not None:
            params = {**self.tree_params, **check_estimator_params(self.estimator, given)}
        else:
            params = {**self.tree_params, **self._checked_recipe_params(given)}
        self._versions.train(self._training(params, allow_schema_change=allow_schema_change, estimator=estimator))
        return self

    def _checked_recipe_params(self, given: Mapping[str, object]) -> dict[str, object]:
        """Parameters for a training of the current recipe's estimator (a tree unless the current
        version was trained with another)."""
        recipe = Recipe.from_metadata(self._versions.current_metadata()) if self.data is None else None
        if recipe is None or recipe.estimator_name == DEFAULT_ESTIMATOR:
            return check_tree_params(given)
        return check_estimator_params(recipe.estimator_name, given)

    def import_model(self, estimator_or_path: object, sample: object = None, trust: Sequence[str] = ()) -> Modeler:
        """Adopt a fitted scikit-learn estimator or Pipeline, or a file holding one (``.joblib``,
        ``.pkl``, ``.pickle`` read by the restricted loader, ``.skops`` by skops' safe loader;
        ``trust`` names further types to admit), as a new saved version, and make it current.

        ``sample`` (a DataFrame, or a CSV's path) gives the columns' types, categories and ranges;
        without it the estimator's own knowledge is used. Returns self, like :meth:`fit`.
        """
        from modeler.importing import adoption

        self._versions.train(adoption(estimator_or_path, sample, trust))
        return self

    def activate(self, version: str) -> dict:
        """Make a saved version current (a rollback is this), after verifying it loads; returns its
        metadata. Every process sharing the model directory follows within ``poll_interval``."""
        return copy.deepcopy(self._versions.activate(version).metadata)

    def _training(
        self,
        params: Mapping[str, object],
        *,
        automatic: bool = False,
        allow_schema_change: bool = False,
        estimator: str | object | None = None,
    ) -> Training:
        """What the version store calls to train: the data and target are the Modeler's when it has
        data, else the current version's recipe. An ``automatic`` training (lazy, or replacing an
        unusable version) also repeats the recipe's parameters: it rebuilds the same model."""

        def make(current: dict | None) -> TrainedVersion:
            data, target, chosen = self.data, self.target, dict(params)
            model = estimator if estimator is not None else self.estimator
            recipe = Recipe.from_metadata(current) if data is None else None
            if recipe is not None:
                data, target = recipe.source(), recipe.target
                if model is None:  # the recipe's estimator, with its parameters on an automatic run
                    model = recipe.estimator_name
                    if model not in trainable():
                        raise DataError(f"the current version's {model} cannot be trained by name: pass the estimator")
                    if automatic:
                        chosen = {**recipe.params, **chosen}
            return train(
                data,
                target,
                chosen,
                self.random_state,
                current=current,
                allow_schema_change=allow_schema_change,
                estimator=DEFAULT_ESTIMATOR if model is None else model,
            )

        return make

    def _on_version(self, event: str, version: str) -> None:
        conflict = self.settings_conflict() if event == LOADED else None
        if conflict:
            log.warning("model settings disagree with the current version: %s", conflict)

    # -- predict -------------------------------------------------------------------------

    def infer(
        self,
        x: object,
        *,
        estimator_walk: bool = False,
        request_id: str | None = None,
        model: LoadedModel | None = None,
    ) -> Inference:
        """Validate ``x`` and predict it; the result carries the version that computed it: the
        current one, or ``model`` (a :meth:`saved_version`, e.g. a pinned or a candidate version).

        A batch is answered without scikit-learn where the model has a compiled path (so a server
        never unpickles the estimator); ``estimator_walk=True`` lets the single tree use
        scikit-learn's own compiled walk instead, about 3x faster on a million rows, identical by
        construction (for in-process batches). Raises :class:`~modeler.errors.InvalidInput`
        naming every bad field (its row, and the problem). With a
        ``prediction_log``, the rows are recorded under ``request_id`` (else a new id).
        """
        model = model or self._versions.current()
        schema = model.schema
        if type(x) is DecodedRecords:  # a body the server decoded for the current model's fields
            x = x.for_model(model.features, schema.numeric_only)
        typed = None
        if schema.numeric_only:  # the float fast path (the default model's)
            rows, single = to_rows(x, model.features)
        elif schema.numbers:  # numbers that may be null: the fast path unless a null is sent
            try:
                rows, single = to_rows(x, model.features)
            except InvalidInput:
                rows, single = to_typed_rows(x, schema)
                typed = schema
        else:
            rows, single = to_typed_rows(x, schema)
            typed = schema
        answers = model.predictor.answer(rows, single=single, use_estimator=estimator_walk)
        result = Inference(model.version, model.features, rows, single, answers, model.predictor, model.ranges, typed)
        if self.prediction_log is not None:
            self.prediction_log.record_inference(result, request_id)
        return result

    def predict(self, x: object) -> object:
        """Class label (in its own type) or, for a regressor, the value for one row (a dict or a
        list of values in feature order); a list of them for many rows (a list of rows, a 2-D
        array or a DataFrame), in input order."""
        result = self.infer(x, estimator_walk=True)
        if result.predictor.can(VALUE):
            values = result.values()
            return float(values[0]) if result.single else values.tolist()
        if result.single:
            return result.answers.label(0)
        return result.label_array().tolist()

    def explain(self, x: object) -> object:
        """Why the model answers as it does, for one row (the same forms as :meth:`predict`) or a
        list for many rows: a single tree's root-to-leaf path (:class:`Explanation`), or a tree
        ensemble's contributions per feature; ``.as_dict()`` gives it as JSON. Other models raise
        InvalidInput naming ``explain``."""
        result = self.infer(x)
        explanations = result.explanations()
        return explanations[0] if result.single else explanations

    def predict_proba(self, x: object) -> dict[str, float] | list[dict[str, float]] | pd.DataFrame:
        """``{class: probability}`` for one row, a list of such dicts for many rows, or a DataFrame
        with one column per class (and the input's index) when given a DataFrame. Classes are
        keyed ``str(label)``; a model without ``predict_proba`` raises InvalidInput."""
        model = self._versions.current()
        if not model.predictor.can(PROBABILITIES):
            what = "a regressor" if model.predictor.can(VALUE) else f"this {model.metadata.get('estimator')}"
            raise InvalidInput([FieldError(None, "probabilities", f"{what} gives no probabilities")])
        result = self.infer(x, estimator_walk=True)
        if result.single:
            return result.probability_dicts()[0]
        pd = sys.modules.get("pandas")  # a DataFrame implies pandas is loaded
        if pd is not None and isinstance(x, pd.DataFrame):
            return pd.DataFrame(result.probabilities, columns=list(result.classes), index=x.index)
        return result.probability_dicts()
