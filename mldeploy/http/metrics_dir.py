"""The folder a server's workers share their metrics in (prometheus-client's multiprocess mode),
set up before anything imports prometheus-client: it chooses its store when it is imported.

Only the standard library here: gunicorn_conf.py and granian_server.py call it first thing.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from mldeploy.settings import Settings


def prepare(settings: Settings) -> tuple[Path, bool]:
    """Name the folder in the environment (PROMETHEUS_MULTIPROC_DIR, else a fresh temporary one),
    emptied of an earlier run's counts (and its dead workers' files) so that they do not leak
    into this one; returns it, and whether it is ours to remove at the end. Only
    prometheus-client's own ``*.db`` files are removed: the folder may be one the user named."""
    ours = settings.prometheus_multiproc_dir is None
    folder = settings.prometheus_multiproc_dir or Path(tempfile.mkdtemp(prefix="mldeploy-metrics-"))
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)  # a setting (settings.py reads it too)
    return folder, ours
