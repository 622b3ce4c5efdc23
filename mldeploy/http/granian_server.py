"""``mldeploy serve --server granian``: the service under Granian's WSGI mode (a Rust HTTP
server, keep-alive, requirements-granian.txt) instead of gunicorn.

This process does what gunicorn's master does in mldeploy/http/gunicorn_conf.py, then becomes
Granian's main process: one BLAS/OpenMP thread, a fresh folder for the workers' shared metrics,
JSON logs for every line (Granian's own too), and the app and its model loaded once before the
workers are forked, so that they share it and answer at once. Each worker then sets up its own
logging (Granian configures logging again in every worker) and, when it stops, writes what its
prediction log still queues. A worker that dies has its live gauges dropped at the next scrape
(:func:`mldeploy.http.metrics.exposition`): Granian has no hook for a worker's exit.

What gunicorn does and Granian does not (docs/production.md, "Serving under Granian"): no
request timeout (a hung request holds its thread), and connections still queued on the socket
at SIGTERM may be reset rather than answered.
"""

from __future__ import annotations

import gc
import logging
import os
import shutil

from mldeploy.http import metrics_dir
from mldeploy.settings import Settings

# The WSGI target each Granian worker calls (a factory: it runs in the worker).
TARGET = "mldeploy.http.granian_server:worker_app"

_app = None  # the app built before the fork; workers inherit it


def worker_app():
    """In each worker, once: logging as this process set it up (Granian's own configuration ran
    again in the worker), the prediction log written at the worker's exit, then the app."""
    from multiprocessing import util

    from mldeploy.http.request_log import configure_logging
    from mldeploy.monitoring.writer import close_open_logs
    from mldeploy.settings import load_settings

    configure_logging(load_settings().log_level)
    # A worker ends through multiprocessing, which skips atexit: its finalizers run instead.
    util.Finalize(None, close_open_logs, exitpriority=10)
    if _app is None:  # a worker started afresh rather than forked (not Linux's default): its own
        from mldeploy.http.app import create_app

        return create_app()
    return _app


def serve(settings: Settings, host: str, port: int, workers: int, threads: int) -> int:
    """Run Granian until it is stopped (SIGTERM, SIGINT); returns its exit status."""
    global _app
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    folder, ours = metrics_dir.prepare(settings)  # before prometheus-client is imported
    try:
        from granian import Granian
        from granian.constants import Interfaces
        from granian.log import LogLevels

        from mldeploy.http.app import create_app
        from mldeploy.http.request_log import configure_logging, logging_config
        from mldeploy.monitoring.writer import close_open_logs

        configure_logging(settings.log_level)
        # Loaded (or trained) once, here, in the foreground: no warm-up thread across the fork.
        _app = create_app({"WARMUP": False})
        readiness = _app.extensions["mldeploy"]
        if not readiness.warm_up():
            logging.getLogger("mldeploy").warning("model not ready at start: %s", readiness.error)
        gc.freeze()  # as gunicorn_conf.py's when_ready: workers' collections skip the shared pages
        server = Granian(
            TARGET,
            address=host,
            port=port,
            interface=Interfaces.WSGI,
            factory=True,
            workers=workers,
            blocking_threads=threads,
            log_level=LogLevels(settings.log_level.lower()),
            log_dictconfig=logging_config(settings.log_level),
            log_access=False,  # mldeploy writes one JSON line per request itself
            websockets=False,  # WSGI has none (Granian would log that it ignores them)
            respawn_failed_workers=True,
            workers_kill_timeout=settings.graceful_timeout or None,
        )
        server.serve()
        close_open_logs()
        return 0
    finally:
        if ours:
            shutil.rmtree(folder, ignore_errors=True)
