"""The version store as one process sees it: which saved version is current, kept loaded and
followed across processes, what to do when it cannot be loaded, activation, retention.

:class:`ModelStore` (``modeler.store``) is the disk layout; this class adds the process's view:

- **Following the pointer.** :meth:`VersionStore.current` is the model every reader gets (a
  prediction, ``/model``, ``/ready``, the metrics): it checks the pointer file (one ``stat``) at
  most every ``poll_interval`` seconds and switches to the version it names.
- **Policies.** A current version that is corrupt or was saved by another scikit-learn is either
  retrained (``"retrain"``: train a fresh version from the same recipe and make it current) or
  refused (``"fail"``: ModelNotReady saying why).
- **Lazy.** With no saved version, the first reader trains one (``lazy_train``), exactly once
  across threads and processes (the writers' file lock).
- **Retention.** Each new version keeps at most ``keep_versions``, never deleting the current one.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path

import filelock

from modeler.errors import (
    DataError,
    IncompatibleModelError,
    ModelIntegrityError,
    ModelNotReady,
    ReadOnlyModelDir,
    SchemaChange,
    VersionNotFound,
    VersionUnusable,
)
from modeler.loaded_model import REQUIRED_METADATA, LoadedModel
from modeler.predictors import COMPILED_FILES, predictor_for, saved_predictor
from modeler.schema import Schema
from modeler.store import COMPILED_FILE, ModelStore
from modeler.training import TrainedVersion

RETRAIN = "retrain"
FAIL = "fail"
POLICIES = (RETRAIN, FAIL)
DEFAULT_KEEP_VERSIONS = 10
# What a listing of versions shows of each (the CLI's `versions` and GET /model/versions).
VERSION_SUMMARY = ("version", "trained_at", "current", "params", "holdout", "tree", "environment", "artifact")
# Events passed to subscribers (see VersionStore.subscribe) with the version concerned.
LOADED = "loaded"
TRAINED = "trained"

# Makes a version to save, given the current version's metadata (None when there is none or it
# cannot be read): what the store calls to train, lazily or to replace an unusable version.
Training = Callable[[dict | None], TrainedVersion]

log = logging.getLogger(__name__)


def check_policy(name: str, value: str | None, default: str) -> str:
    """``value`` if it is a policy (``default`` when None); ValueError naming ``name`` otherwise."""
    if value is None:
        return default
    if value not in POLICIES:
        raise ValueError(f"{name} must be one of {', '.join(POLICIES)}, not {value!r}")
    return value


class VersionStore:
    """The saved versions under one model directory, and the one this process serves."""

    def __init__(
        self,
        model_dir: Path,
        retrain: Training,
        *,
        lazy_train: bool,
        lock_timeout: float,
        poll_interval: float,
        on_corrupt: str,
        on_incompatible: str,
        keep_versions: int,
    ) -> None:
        self.model_dir = model_dir
        self.store = ModelStore(model_dir)
        self._retrain = retrain
        self.lazy_train = lazy_train
        self.lock_timeout = lock_timeout
        self.poll_interval = poll_interval
        self.on_corrupt = on_corrupt
        self.on_incompatible = on_incompatible
        self.keep_versions = keep_versions
        self._model: LoadedModel | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._next_poll = 0.0
        self._switching = False  # a thread is loading the version the pointer moved to
        # The last failure to make the model ready as (retry-after monotonic time, the error):
        # until then it is raised again (as a new exception of the same class, so tracebacks do
        # not pile up) without touching the disk, so a broken model costs no read per request.
        self._failure: tuple[float, ModelNotReady] | None = None
        self._started = False
        self._state_lock = threading.RLock()
        self._subscribers: list[Callable[[str, str], None]] = []
        # A lock held by another thread at fork time would stay held forever in the child.
        ref = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: (s := ref()) is not None and s._after_fork())

    def _after_fork(self) -> None:
        self._state_lock = threading.RLock()

    def subscribe(self, callback: Callable[[str, str], None]) -> None:
        """Call ``callback(event, version)`` once a version is in use: loaded (:data:`LOADED`, at
        start, on activation or on following the pointer) or trained (:data:`TRAINED`)."""
        self._subscribers.append(callback)

    # -- reading -------------------------------------------------------------------------

    @property
    def loaded(self) -> LoadedModel | None:
        """The version in use in this process, if one was loaded yet (never loads by itself)."""
        return self._model

    def current(self) -> LoadedModel:
        """The current version: loads it (or trains one when none is saved and training is
        lazy, or when it is unusable and the policy says retrain) on first use, then follows the
        pointer, checking it at most every ``poll_interval`` seconds."""
        model = self._model
        if model is None:
            return self._make_ready()
        now = time.monotonic()
        if now < self._next_poll and not self._switching:
            return model
        return self._follow(model, now)

    def versions(self, summary: bool = False) -> list[dict]:
        """Metadata of every saved version, oldest first, each with ``current`` set; with
        ``summary``, only the keys in VERSION_SUMMARY."""
        current = self.store.current_version()
        found = [{**m, "current": m.get("version") == current} for m in self.store.list_versions()]
        if summary:
            return [{key: m.get(key) for key in VERSION_SUMMARY} for m in found]
        return found

    def saved(self, version: str) -> LoadedModel:
        """One saved version, verified and loaded, without making it current."""
        return self._load_version(version)

    def current_metadata(self) -> dict | None:
        """The metadata of the version the pointer names, straight from disk; None when there is
        no current version or its metadata cannot be read."""
        version = self.store.current_version()
        if version is None:
            return None
        try:
            return self.store.read_metadata(version)
        except (ModelIntegrityError, VersionNotFound, OSError):
            return None

    # -- writing -------------------------------------------------------------------------

    def load(self) -> LoadedModel:
        """Load the current version with the full check (the estimator unpickled too). Never
        trains: a corrupt or incompatible version raises whatever its error is."""
        with self._state_lock:
            stamp = self.store.pointer_stamp()
            version = self.store.current_version()
            if version is None:
                raise ModelNotReady(
                    "no saved model in the model directory: call fit() or run `python -m mldeploy train`",
                    path=self.model_dir,
                )
            return self._use(self._load_current(version, unpickle=True), stamp, LOADED)

    def train(self, make: Training) -> LoadedModel:
        """Train a version with ``make``, save it and make it current."""
        with self._state_lock, self._writer_lock():
            return self._train_locked(make)

    def activate(self, version: str) -> LoadedModel:
        """Make a saved version current (a rollback is this), after verifying it loads. Every
        process sharing the model directory follows within ``poll_interval``."""
        with self._state_lock, self._writer_lock():
            try:
                model = self._load_version(version, unpickle=True)  # the full check before switching
            except ModelNotReady as exc:
                raise VersionUnusable(f"cannot activate version {version!r}: {exc}", path=exc.path) from exc
            self.store.activate(version)
            self._use(model, self.store.pointer_stamp(), LOADED)
        log.info("activated model version %s in %s", version, self.model_dir)
        return model

    def remove_stray_temp(self) -> list[Path]:
        """Delete what killed writers left behind (run at start). Skips a read-only directory and
        a lock held by a live writer, whose temp files are still being written."""
        if not self.store.root.is_dir() or not self.store.writable():
            return []
        lock = self.store.lock(timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            return []
        try:
            removed = self.store.remove_stray_temp()
        finally:
            lock.release()
        if removed:
            log.warning("removed %d stray temporary file(s) in %s", len(removed), self.model_dir)
        return removed

    # -- internals -----------------------------------------------------------------------

    @contextlib.contextmanager
    def _writer_lock(self) -> Iterator[None]:
        lock = self.store.lock(self.lock_timeout)
        try:
            lock.acquire()
        except filelock.Timeout as exc:
            raise ModelNotReady(
                f"another process has held the training lock for over {self.lock_timeout:g} s", path=lock.lock_file
            ) from exc
        try:
            self.store.remove_stray_temp()
            yield
        finally:
            lock.release()

    def _use(self, model: LoadedModel, stamp: tuple[int, int, int] | None, event: str) -> LoadedModel:
        self._model, self._stamp = model, stamp
        self._next_poll = time.monotonic() + self.poll_interval
        self._failure = None
        for callback in self._subscribers:
            callback(event, model.version)
        return model

    def _load_estimator(self, version: str) -> object:
        from sklearn.base import BaseEstimator

        estimator, _ = self.store.load(version)
        if not isinstance(estimator, BaseEstimator):
            raise IncompatibleModelError(
                f"version {version!r} holds a {type(estimator).__name__}, not a scikit-learn estimator"
            )
        return estimator

    def _load_version(self, version: str, *, unpickle: bool = False) -> LoadedModel:
        """A verified version: from its compiled form when it has one (no unpickling, no
        scikit-learn import), else from the pickled estimator. ``unpickle`` also unpickles the
        estimator now, the full check (an ``InconsistentVersionWarning`` is an error)."""
        compiled = self.store.load_compiled(version)
        if compiled is not None:
            data, metadata = compiled
            try:
                predictor = saved_predictor(data, functools.partial(self._load_estimator, version), metadata)
            except (ValueError, KeyError, TypeError) as exc:
                raise ModelIntegrityError(f"the compiled tree of version {version!r} is unusable: {exc}") from exc
        else:
            estimator = self._load_estimator(version)
            metadata = self.store.read_metadata(version)
            try:
                predictor = predictor_for(estimator, Schema.from_metadata(metadata))
            except (ValueError, AttributeError) as exc:
                raise ModelIntegrityError(f"version {version!r} cannot be served: {exc}") from exc
        missing = [key for key in REQUIRED_METADATA if key not in metadata]
        if missing:
            raise ModelIntegrityError(f"metadata of version {version!r} lacks {', '.join(missing)}")
        model = LoadedModel(version, metadata, predictor)
        if unpickle:
            _ = model.estimator
        log.info("loaded model version %s from %s", version, self.model_dir)
        return model

    def _load_current(self, version: str, *, unpickle: bool = False) -> LoadedModel:
        """Load the version the pointer names; a pointer to a missing version is corruption."""
        try:
            return self._load_version(version, unpickle=unpickle)
        except VersionNotFound as exc:
            # The pointer names a version that is gone: nothing to serve (503, or retrain).
            raise ModelIntegrityError(f"the current pointer names version {version!r}, which is missing") from exc

    def _train_locked(self, make: Training) -> LoadedModel:
        trained = make(self.current_metadata())
        predictor = trained.predictor or predictor_for(trained.estimator)
        compiled = predictor.compiled()
        metadata = self.store.save(
            trained.estimator,
            {**trained.metadata, "predictor": predictor.name},
            compiled=compiled,
            compiled_file=COMPILED_FILES.get(predictor.name, COMPILED_FILE),
        )
        version = metadata["version"]
        self.store.activate(version)
        log.info("trained and saved model version %s in %s", version, self.model_dir)
        model = self._use(LoadedModel(version, metadata, predictor), self.store.pointer_stamp(), TRAINED)
        self._prune_locked()
        return model

    def _prune_locked(self) -> list[str]:
        """Delete the oldest versions beyond ``keep_versions``, never the current one."""
        current = self.store.current_version()
        saved = [m["version"] for m in self.store.list_versions() if isinstance(m.get("version"), str)]
        keep = set(saved[-self.keep_versions :]) | {current}
        removed = [v for v in saved if v not in keep]
        for version in removed:
            with contextlib.suppress(VersionNotFound):
                self.store.delete(version)
        if removed:
            log.info("retention (keep %d): removed version(s) %s", self.keep_versions, ", ".join(removed))
        return removed

    def _make_ready(self) -> LoadedModel:
        with self._state_lock:
            if self._model is not None:
                return self._model
            failure = self._failure
            if failure is not None and time.monotonic() < failure[0]:
                error = failure[1]
                raise type(error)(str(error), path=error.path)
            try:
                return self._load_or_train()
            except ModelNotReady as exc:
                self._failure = (time.monotonic() + self.poll_interval, exc)
                raise

    def _load_or_train(self) -> LoadedModel:
        if not self._started:
            self._started = True
            self.remove_stray_temp()
        stamp = self.store.pointer_stamp()
        version = self.store.current_version()
        if version is None:
            if not self.lazy_train:
                raise ModelNotReady(
                    "no saved model in the model directory and lazy training is off", path=self.model_dir
                )
            return self._train_unless_replaced(None, ModelNotReady("no saved model", path=self.model_dir))
        try:
            return self._use(self._load_current(version), stamp, LOADED)
        except (ModelIntegrityError, IncompatibleModelError) as exc:
            policy = self.on_incompatible if isinstance(exc, IncompatibleModelError) else self.on_corrupt
            if policy == FAIL:
                raise
            log.warning("current model version unusable (%s); training a fresh version", exc.detail())
            return self._train_unless_replaced(version, exc)

    def _train_unless_replaced(self, unusable: str | None, reason: ModelNotReady) -> LoadedModel:
        """Train and activate a version, unless another thread or process replaced the current
        version ``unusable`` (None: there was none) while this one waited for the lock."""
        try:
            with self._writer_lock():
                stamp = self.store.pointer_stamp()
                version = self.store.current_version()
                if version is not None and version != unusable:
                    return self._use(self._load_current(version), stamp, LOADED)
                return self._train_locked(self._retrain)
        except (ReadOnlyModelDir, DataError, SchemaChange) as exc:  # cannot train: not ready
            raise ModelNotReady(f"{reason}, and cannot train one: {exc}", path=exc.path or reason.path) from exc

    def _follow(self, model: LoadedModel, now: float) -> LoadedModel:
        """Switch to the version the pointer names, if it moved since the last look."""
        stamp = self.store.pointer_stamp()
        if stamp == self._stamp or stamp is None:
            self._next_poll = now + self.poll_interval
            return model
        # While this thread loads the new version, the process's other threads (a threaded
        # worker's) must not go on answering from the old one until the next poll: they come
        # here too and wait on the lock. The flag is up before the next poll is pushed back, so
        # a thread that sees the later poll time also sees the flag.
        self._switching = True
        self._next_poll = now + self.poll_interval
        try:
            return self._switch(model, stamp)
        finally:
            self._switching = False

    def _switch(self, model: LoadedModel, stamp: tuple[int, int, int]) -> LoadedModel:
        with self._state_lock:
            version = self.store.current_version()
            if version is None or version == self._model.version:
                self._stamp = stamp
                return self._model
            try:
                return self._use(self._load_version(version), stamp, LOADED)
            except (ModelNotReady, VersionNotFound) as exc:
                # Keep serving the version we have, and do not retry until the pointer moves again
                # (activate() verifies a version first, so only a hand-edited pointer gets here).
                self._stamp = stamp
                log.error(
                    "cannot switch to model version %s (%s); still serving %s",
                    version,
                    exc.detail(),
                    self._model.version,
                )
                return self._model
