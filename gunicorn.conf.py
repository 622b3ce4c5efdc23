"""gunicorn settings: ``gunicorn -c gunicorn.conf.py app:app`` or ``python -m mldeploy serve``.

gunicorn ignores unknown names here silently, so every name below is one it documents.
"""

import multiprocessing
import os

# Fork-safety: forked workers can hang when the parent used OpenMP/BLAS thread pools, and one
# tree prediction gains nothing from threads. This file is read before the app (and numpy) loads.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

wsgi_app = "app:app"
bind = os.environ.get(
    "MLDEPLOY_BIND", f"{os.environ.get('MLDEPLOY_HOST', '127.0.0.1')}:{os.environ.get('MLDEPLOY_PORT', '5000')}"
)
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * multiprocessing.cpu_count()))
# Load (or train) the model once in the master; workers inherit it on fork. MLDEPLOY_PRELOAD=0
# makes each worker import the app and make the model ready itself (the file lock then decides
# which one trains when the model directory is empty).
preload_app = os.environ.get("MLDEPLOY_PRELOAD", "1").strip().lower() not in ("0", "false", "no", "off")
timeout = int(os.environ.get("MLDEPLOY_WORKER_TIMEOUT", 30))
# On SIGTERM, workers finish in-flight requests for up to this long.
graceful_timeout = int(os.environ.get("MLDEPLOY_GRACEFUL_TIMEOUT", 20))
keepalive = 5
# Since gunicorn 25.1 the master opens a per-user control socket that a second instance takes over.
control_socket_disable = True
accesslog = None  # mldeploy logs one JSON line per request itself
errorlog = "-"


def when_ready(server):
    """After the preloaded app is built and before any worker forks: make the model ready."""
    if not server.cfg.preload_app:
        return  # wsgi() here would load the app in the master after all
    readiness = server.app.wsgi().extensions["mldeploy"]
    if not readiness.warm_up():
        server.log.warning("model not ready at start: %s", readiness.error)
