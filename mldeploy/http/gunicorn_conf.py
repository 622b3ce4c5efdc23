"""gunicorn settings: ``python -m mldeploy serve``, or ``gunicorn -c python:mldeploy.http.gunicorn_conf``.

gunicorn ignores unknown names here silently, so every name below is one it documents. This file
runs in the master before the app is imported, which is why the environment is set up here.
"""

import gc
import os
import shutil
import sys

# Fork-safety: forked workers can hang when the parent used OpenMP/BLAS thread pools, and one
# tree prediction gains nothing from threads. This file is read before the app (and numpy) loads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from mldeploy.cli.exit_codes import EXIT_USAGE  # noqa: E402 - these two import only the standard library
from mldeploy.http import metrics_dir  # noqa: E402 - the standard library only, as the two above
from mldeploy.settings import WORKER_CLASSES, SettingsError, load_settings  # noqa: E402

# Checked here, before the app is imported: gunicorn reads this file in its master before forking,
# so a bad value is one line and an exit, not a traceback (or one per worker without preload).
try:
    _settings = load_settings()
except SettingsError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(EXIT_USAGE)

# Metrics across workers, in a folder named before anything imports prometheus-client (mldeploy.http
# below does): mldeploy/http/metrics_dir.py.
_METRICS_DIR, _METRICS_DIR_OURS = metrics_dir.prepare(_settings)

from mldeploy.http.request_log import configure_logging  # noqa: E402 - needs the environment above

wsgi_app = "mldeploy.http.wsgi:app"
bind = _settings.gunicorn_bind
workers = _settings.web_concurrency
# gthread (the default) keeps connections open between requests; sync opens one per request.
# Both answer the connections already queued on the socket when SIGTERM comes, and send each
# answer's header with its body (docs/production.md, "Workers and keep-alive").
worker_class = WORKER_CLASSES[_settings.worker_class]
# Only gthread runs threads. gunicorn turns a sync worker given more than one thread into its
# plain gthread worker, without our drain: so sync gets exactly one.
threads = _settings.threads if _settings.worker_class == "gthread" else 1
# Load (or train) the model once in the master; workers inherit it on fork. MLDEPLOY_PRELOAD=0
# makes each worker import the app and make the model ready itself (the file lock then decides
# which one trains when the model directory is empty).
preload_app = _settings.preload
# A request running longer than this has its worker killed and replaced (the gthread worker
# pauses its heartbeat while a request runs long, so that this holds for it too).
timeout = _settings.worker_timeout
# On SIGTERM, workers finish in-flight requests for up to this long. Keep it below the
# orchestrator's grace period (Kubernetes: terminationGracePeriodSeconds).
graceful_timeout = _settings.graceful_timeout
# Seconds a gthread worker keeps an idle connection open for the next request. A proxy in front
# must close its idle upstream connections sooner (deploy/nginx/mldeploy.conf: 4 s), or it may
# send a request on a connection this side is closing at that moment.
keepalive = 5
# Since gunicorn 25.1 the master opens a per-user control socket that a second instance takes over.
control_socket_disable = True
# Every log line, gunicorn's too, as JSON on stderr (python-json-logger), set up here, before
# the app is preloaded, so that loading the model logs JSON too. Not through logconfig_dict: that
# would switch gunicorn's access log on (it formats every request even with no handler to write
# it) and drop the file an --access-logfile option asks for.
configure_logging(_settings.log_level)
errorlog = None  # gunicorn's own text handler would double the JSON lines
accesslog = None  # mldeploy logs one JSON line per request itself


def when_ready(server):
    """After the preloaded app is built and before any worker forks: make the model ready."""
    if not server.cfg.preload_app:
        return  # wsgi() here would load the app in the master after all
    readiness = server.app.wsgi().extensions["mldeploy"]
    if not readiness.warm_up():
        server.log.warning("model not ready at start: %s", readiness.error)
    # Everything built so far (modules, app, model) moves to a generation the collector never
    # scans: workers' collections stay short and do not write to, and so unshare, the parent's pages.
    gc.freeze()


def child_exit(server, worker):
    """A worker is gone: drop its live gauges so they stop counting in /metrics."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def worker_exit(server, worker):
    """In a worker that stops (SIGTERM too), after its last request: write what its prediction
    log still queues before the process goes (waiting at most MLDEPLOY_LOG_CLOSE_TIMEOUT)."""
    from mldeploy.monitoring.writer import close_open_logs

    close_open_logs()


def on_exit(server):
    """The master stops: remove the metrics folder if this file made it."""
    if _METRICS_DIR_OURS:
        shutil.rmtree(_METRICS_DIR, ignore_errors=True)
