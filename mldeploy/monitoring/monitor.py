"""The service's side of watching the model: which log database to read, a connection per
thread to it, what each version accepts as ground truth, and its training reference.

One :class:`Monitor` per app, handed to the monitoring resources and to ``/metrics``. It reads
the shared log only, never a worker's memory, so every worker and replica answers alike.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator

from flask import Flask

from mldeploy.monitoring import recording
from mldeploy.monitoring.errors import MonitoringConflict
from mldeploy.monitoring.feedback import CLASSIFICATION, REGRESSION, VersionFacts
from mldeploy.monitoring.store import Store, open_store
from mldeploy.settings import Settings
from modeler.modeler import Modeler
from modeler.reference import REFERENCE

# After a flush of this process's queue, how much longer than the writers' flush interval a
# feedback for an id not yet in the database waits for another worker's writer.
WRITE_MARGIN = 0.25


class Monitor:
    """Reads the prediction log ``database`` for ``model`` (the name recorded with each row).

    ``enabled`` False (the log is off) makes every read a :class:`MonitoringConflict`;
    ``window`` is the default window in rows; ``flush`` writes this process's queued records
    (the PredictionLog's ``flush``) and ``flush_interval`` is how long any writer may hold one.
    """

    def __init__(
        self,
        modeler: Modeler,
        database: str | os.PathLike,
        model: str,
        *,
        enabled: bool = True,
        window: int = 1000,
        flush: Callable[[float], object] | None = None,
        flush_interval: float = 1.0,
    ) -> None:
        self.modeler = modeler
        self.database = os.fspath(database)
        self.model = model
        self.enabled = enabled
        self.window = window
        self.flush = flush
        self.flush_interval = flush_interval
        self._metadata: dict[str, dict] = {}  # a saved version's metadata never changes

    @classmethod
    def of(cls, app: Flask, settings: Settings, modeler: Modeler) -> Monitor:
        """The monitor of ``app``: its prediction log's database, flushed through its log."""
        prediction_log = recording.prediction_log_of(app)
        return cls(
            modeler,
            recording.database_of(settings, modeler),
            settings.model_name,
            enabled=settings.log_predictions,
            window=settings.monitoring_window,
            flush=None if prediction_log is None else prediction_log.flush,
            flush_interval=settings.log_flush_interval,
        )

    def check_enabled(self) -> None:
        """MonitoringConflict when the log is off: there is nothing to read or match."""
        if not self.enabled:
            raise MonitoringConflict(
                "the prediction log is off (MLDEPLOY_LOG_PREDICTIONS=false): no feedback, performance or drift"
            )

    @contextlib.contextmanager
    def store(self) -> Iterator[Store]:
        """A connection to the log for one request (closed at the end of the block: a connection
        kept per thread would outlive its app, and these routes are not the hot path);
        LogDatabaseError when the database cannot be opened."""
        self.check_enabled()
        store = open_store(self.database)
        try:
            yield store
        finally:
            store.close()

    def write_own(self) -> None:
        """Write this process's queued records now (waiting at most the flush interval), so a
        read right after a prediction this worker answered sees it; other workers' records
        reach the database within their flush interval (MLDEPLOY_LOG_FLUSH_INTERVAL)."""
        if self.flush is not None:
            self.flush(self.flush_interval)

    @property
    def waits(self) -> tuple[Callable[[], None], ...]:
        """How to let records answered a moment ago reach the database, in turn: write this
        process's queue now; then give the other workers' writers their flush interval."""
        return (self.write_own, lambda: time.sleep(self.flush_interval + WRITE_MARGIN))

    def metadata(self, version: str | None = None) -> dict:
        """A saved version's metadata (the current one's by default); VersionNotFound if unknown."""
        if version is None:
            return self.modeler.metadata
        found = self._metadata.get(version)
        if found is None:
            found = self._metadata[version] = self.modeler.store.read_metadata(version)
        return found

    def facts(self, version: str, task: str) -> VersionFacts:
        """What ``version`` accepts as ground truth; ``task`` (what its logged answers show) when
        its metadata is gone."""
        try:
            metadata = self.metadata(version)
        except Exception:  # deleted by retention, or unreadable: judge by the logged answer alone
            return VersionFacts(task)
        return version_facts(metadata)

    def reference(self, metadata: dict) -> dict:
        """The version's training reference; MonitoringConflict for a version saved without one."""
        reference = metadata.get(REFERENCE)
        if not isinstance(reference, dict):
            raise MonitoringConflict(
                f"version {metadata.get('version')} has no training reference (it was saved before mldeploy "
                "recorded one): train a new version to measure drift"
            )
        return reference


def task_of(metadata: dict) -> str:
    """A version's task: its ``task`` key, else classification (every version saved before had one)."""
    return REGRESSION if metadata.get("task") == REGRESSION else CLASSIFICATION


def version_facts(metadata: dict) -> VersionFacts:
    """What a version's metadata says it accepts as ground truth."""
    task = task_of(metadata)
    classes = metadata.get("classes")
    return VersionFacts(task, tuple(classes) if task == CLASSIFICATION and isinstance(classes, list) else None)
