"""Start, status, promote and abort: one implementation for the command line and the admin
routes. Each change holds the model's rollout lock and rewrites the state file atomically; every
process serving the model follows within its poll interval."""

from __future__ import annotations

import contextlib
import datetime
import logging
import math
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import filelock

from mldeploy.rollout import counters
from mldeploy.rollout.counters import SharedCounters, quantile
from mldeploy.rollout.state import (
    ABORTED,
    ACTIVE,
    CANARY,
    LOCK_FILE,
    PROMOTED,
    SHADOW,
    Rollout,
    RolloutConflict,
    read_rollout,
    write_rollout,
)
from modeler.errors import FieldError, InvalidInput, ModelNotReady, VersionNotFound, VersionUnusable

if TYPE_CHECKING:
    from modeler.modeler import Modeler

log = logging.getLogger(__name__)

BASELINE, CANDIDATE = "baseline", "candidate"
ARMS = (BASELINE, CANDIDATE)
LOCK_TIMEOUT = 30.0
PERCENT = "percent"


def now_text() -> str:
    """The time now, UTC, ISO 8601 to the second."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def check_percent(percent: object) -> float:
    """A canary's share: a number above 0 and at most 100; InvalidInput naming ``percent`` else."""
    if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not math.isfinite(percent):
        raise InvalidInput([FieldError(None, PERCENT, "must be a number above 0 and at most 100")])
    if not 0 < percent <= 100:
        raise InvalidInput([FieldError(None, PERCENT, "must be above 0 and at most 100")])
    return float(percent)


@contextlib.contextmanager
def held(lock: filelock.BaseFileLock, what: str) -> Iterator[None]:
    """Hold ``lock``; a RolloutConflict (409) when another process keeps it past its timeout."""
    try:
        lock.acquire()
    except filelock.Timeout as exc:
        raise RolloutConflict(f"another process has held the {what} for over {lock.timeout:g} s") from exc
    try:
        yield
    finally:
        lock.release()


def rollout_lock(folder: Path) -> contextlib.AbstractContextManager[None]:
    """The model's rollout lock: one change at a time across processes."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return held(filelock.FileLock(Path(folder) / LOCK_FILE, timeout=LOCK_TIMEOUT), "rollout lock")


def start(modeler: Modeler, name: str, version: str, *, percent: float = 10.0, shadow: bool = False) -> Rollout:
    """Start a rollout of ``version`` against the current version: a canary sending ``percent``
    of the traffic to it, or (``shadow``) a copy of every request. 404 for an unknown version,
    409 when a rollout is active, the version is current, or it takes other input fields."""
    percent = check_percent(percent)
    folder = Path(modeler.model_dir)
    with rollout_lock(folder):
        last = read_rollout(folder)
        if last is not None and last.active:
            raise RolloutConflict(
                f"model {name!r} already has an active rollout of version {last.candidate}: promote or abort it first"
            )
        current = modeler.ensure_ready()
        if version == current.version:
            raise RolloutConflict(f"version {version!r} is already the current version of model {name!r}")
        try:
            # Verified (sha256, the scikit-learn it was saved with) and loaded as it will serve; the
            # full check (unpickling the estimator, which imports scikit-learn) comes with promote.
            candidate = modeler.saved_version(version)
        except VersionNotFound as exc:
            raise VersionNotFound(f"model {name!r} has no saved version {version!r}") from exc
        except ModelNotReady as exc:  # corrupt, or saved by another scikit-learn
            raise VersionUnusable(f"cannot roll out version {version!r}: {exc}", path=exc.path) from exc
        if candidate.features != current.features:
            raise RolloutConflict(
                f"version {version!r} takes other input fields than the current version {current.version}: "
                "clients would have to change; activate it instead"
            )
        rollout = Rollout(
            id=uuid.uuid4().hex[:12],
            model=name,
            candidate=version,
            baseline=current.version,
            mode=SHADOW if shadow else CANARY,
            percent=100.0 if shadow else percent,
            state=ACTIVE,
            started_at=now_text(),
        )
        write_rollout(folder, rollout)
    log.info("rollout %s of model %s: %s %s against %s", rollout.id, name, rollout.mode, version, current.version)
    return rollout


def _active(folder: Path, name: str) -> Rollout:
    rollout = read_rollout(folder)
    if rollout is None or not rollout.active:
        raise RolloutConflict(f"model {name!r} has no active rollout")
    return rollout


def promote(modeler: Modeler, name: str) -> Rollout:
    """Make the candidate current and end the rollout. The pointer moves under the model's writer
    lock, as an activation's does, without unpickling the estimator: the candidate was verified
    when the rollout started (sha256, the scikit-learn it was saved with) and every worker has been
    answering from those very files since; the pickle's own check would import scikit-learn into a
    serving worker under load (seconds on a busy machine)."""
    folder = Path(modeler.model_dir)
    with rollout_lock(folder):
        rollout = _active(folder, name)
        modeler.store.read_metadata(rollout.candidate)  # still saved (404 naming it if deleted since)
        with held(modeler.store.lock(LOCK_TIMEOUT), "model's writer lock"):
            modeler.store.activate(rollout.candidate)
        ended = _ended(rollout, PROMOTED, "promoted")
        write_rollout(folder, ended)
    log.info("rollout %s of model %s promoted: %s is current", rollout.id, name, rollout.candidate)
    return ended


def abort(folder: Path, name: str, reason: str = "aborted by hand", *, rollout_id: str | None = None) -> Rollout:
    """End the rollout; the baseline keeps answering everything. With ``rollout_id``, only that
    rollout is ended (an automatic abort never ends a newer rollout than the one it judged)."""
    with rollout_lock(folder):
        rollout = _active(folder, name)
        if rollout_id is not None and rollout.id != rollout_id:
            return rollout
        ended = _ended(rollout, ABORTED, reason)
        write_rollout(folder, ended)
    log.warning("rollout %s of model %s aborted: %s", rollout.id, name, reason)
    return ended


def _ended(rollout: Rollout, state: str, reason: str) -> Rollout:
    from dataclasses import replace

    return replace(rollout, state=state, ended_at=now_text(), reason=reason)


def arm_summary(found: dict[str, float], version: str) -> dict:
    """One arm's figures from its shared counts."""
    requests = int(found.get(counters.REQUESTS, 0))
    errors = int(found.get(counters.ERRORS, 0))
    histogram = {
        int(key[len(counters.LATENCY_PREFIX) :]): value
        for key, value in found.items()
        if key.startswith(counters.LATENCY_PREFIX)
    }
    classes = {
        key[len(counters.CLASS_PREFIX) :]: int(value)
        for key, value in sorted(found.items())
        if key.startswith(counters.CLASS_PREFIX)
    }
    p50, p99 = quantile(histogram, 0.5), quantile(histogram, 0.99)
    return {
        "version": version,
        "requests": requests,
        "rows": int(found.get(counters.ROWS, 0)),
        "errors": errors,
        "error_rate": errors / requests if requests else None,
        "latency_ms": {
            "p50": None if p50 is None else round(p50 * 1000, 4),
            "p99": None if p99 is None else round(p99 * 1000, 4),
        },
        "classes": classes,
    }


def status(folder: Path, name: str) -> dict:
    """The model's last rollout and how its two versions compare over it (figures of every
    process, as of their last flush: at most a quarter second old)."""
    rollout = read_rollout(folder)
    if rollout is None:
        return {"model": name, "rollout": None}
    reader = SharedCounters(folder)
    try:
        totals = reader.totals(rollout.id)
    finally:
        reader.close()
    arms = {
        BASELINE: arm_summary(totals.get(BASELINE, {}), rollout.baseline),
        CANDIDATE: arm_summary(totals.get(CANDIDATE, {}), rollout.candidate),
    }
    compared = totals.get(CANDIDATE, {}).get(counters.COMPARED, 0)
    agreed = totals.get(CANDIDATE, {}).get(counters.AGREED, 0)
    requests = arms[BASELINE]["requests"] + arms[CANDIDATE]["requests"]
    return {
        "model": name,
        "rollout": rollout.as_dict(),
        "arms": arms,
        # The share of requests the candidate answered (a shadow answers none).
        "candidate_share": arms[CANDIDATE]["requests"] / requests if requests and rollout.mode == CANARY else None,
        "agreement": {
            "compared_rows": int(compared),
            "agreed_rows": int(agreed),
            "rate": agreed / compared if compared else None,
            "dropped": int(totals.get(CANDIDATE, {}).get(counters.DROPPED, 0)),
        },
    }
