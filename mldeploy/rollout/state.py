"""The rollout state of one model: a small JSON file in the model's folder, written atomically,
and followed by every worker and replica sharing the folder as the current-version pointer is
(one ``stat`` per poll interval, a read only when the file changed)."""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from modeler.atomic import atomic_write_text
from modeler.errors import ModelerError

ROLLOUT_FILE = "ROLLOUT.json"
LOCK_FILE = ".rollout.lock"
# Modes: the candidate answers a share of the traffic, or sees a copy of it and never answers.
CANARY, SHADOW = "canary", "shadow"
# States: a rollout is active until it is promoted or aborted (by hand or by itself).
ACTIVE, PROMOTED, ABORTED = "active", "promoted", "aborted"


@functools.lru_cache(maxsize=16)
def epoch_seconds(text: str) -> float:
    """A rollout's time (ISO 8601 to the second, ``...Z``) as epoch seconds: every process
    reads the same instant from the shared record, whatever its own clock of events."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class RolloutConflict(ModelerError):
    """The model's rollout state refuses the request (one already active, none to end, the
    candidate is the current version or takes other fields): answered 409."""


@dataclass(frozen=True)
class Rollout:
    """One rollout of a model: the candidate against the baseline (the version current when it
    started), how it is split, and how it ended."""

    id: str
    model: str
    candidate: str
    baseline: str
    mode: str
    percent: float
    state: str
    started_at: str
    ended_at: str | None = None
    reason: str | None = None

    @property
    def active(self) -> bool:
        """Whether requests are routed by this rollout now."""
        return self.state == ACTIVE

    def as_dict(self) -> dict:
        """The rollout as plain JSON values."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Rollout:
        """A rollout read back from its file (unknown keys are ignored: newer writers may add some)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def rollout_path(folder: Path) -> Path:
    """The rollout state file of the model whose versions are in ``folder``."""
    return Path(folder) / ROLLOUT_FILE


def read_rollout(folder: Path) -> Rollout | None:
    """The model's last rollout (active or ended); None when it never had one or the file is unreadable."""
    try:
        return Rollout.from_dict(json.loads(rollout_path(folder).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def write_rollout(folder: Path, rollout: Rollout) -> None:
    """Replace the model's rollout state atomically (readers see the old or the new one)."""
    atomic_write_text(rollout_path(folder), json.dumps(rollout.as_dict(), indent=2, sort_keys=True) + "\n")


class RolloutFollower:
    """The rollout state as this process sees it, checked at most every ``poll_interval`` seconds."""

    def __init__(self, folder: Path, poll_interval: float) -> None:
        self.path = rollout_path(folder)
        self.folder = Path(folder)
        self.poll_interval = poll_interval
        self._rollout: Rollout | None = None
        self._stamp: tuple[int, int, int] | None = None
        self._next_poll = 0.0
        self._lock = threading.Lock()
        # When this process first saw the state it holds (monotonic seconds).
        self.seen_at = 0.0

    def current(self) -> Rollout | None:
        """The model's last rollout, as of at most ``poll_interval`` seconds ago."""
        now = time.monotonic()
        if now < self._next_poll:
            return self._rollout
        with self._lock:
            if now < self._next_poll:  # another thread looked while this one waited for the lock
                return self._rollout
            try:
                st = os.stat(self.path)
                stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
            except FileNotFoundError:
                stamp = None
            if stamp != self._stamp:
                self._stamp = stamp
                self._rollout = read_rollout(self.folder) if stamp is not None else None
                self.seen_at = now
            # Only now: a thread that skips the lock must find the state this look read, not the
            # one before it (setting it first let a second thread answer from a stale state).
            self._next_poll = now + self.poll_interval
        return self._rollout

    def refresh(self) -> Rollout | None:
        """Read the state now (after this process changed it)."""
        self._next_poll = 0.0
        return self.current()
