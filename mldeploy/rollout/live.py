"""Each version's live performance over a rollout, from ground truth (``POST /feedback``).

Read from the shared prediction log (the rows each version answered since the rollout started
and that got a label), so every worker, replica and ``rollout status`` gives the same figures.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mldeploy.monitoring.monitor import version_facts
from mldeploy.monitoring.performance import performance
from mldeploy.monitoring.store import Store
from mldeploy.monitoring.windows import MAX_ROWS, Window
from mldeploy.rollout.control import ARMS
from mldeploy.rollout.state import epoch_seconds

# The key of a rollout status that holds each version's live performance.
LIVE_PERFORMANCE = "live_performance"


def started_seconds_ago(rollout: dict) -> float:
    """Seconds since ``rollout`` (its ``as_dict()``) started."""
    return max(time.time() - epoch_seconds(rollout["started_at"]), 0.0)


def live_performance(store: Store, model_name: str, rollout: dict, read_metadata: Callable[[str], dict]) -> dict:
    """``{"baseline": figures, "candidate": figures}``, each as ``GET /model/performance``
    gives them, over the rows that version answered since ``rollout`` started (an ended
    rollout's window runs to now: the baseline's figures then include what it answered after)."""
    window = Window(MAX_ROWS, started_seconds_ago(rollout), "since the rollout started")
    live = {}
    for arm in ARMS:
        version = rollout[arm]
        facts = version_facts(read_metadata(version))
        live[arm] = performance(store, model_name, version, window, facts.task, facts.classes or ())
    return live
