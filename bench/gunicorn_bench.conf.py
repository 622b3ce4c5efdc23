"""gunicorn settings for the bench's baseline and floor servers: the same worker model as
mldeploy/http/gunicorn_conf.py (its worker class and threads, from the same MLDEPLOY_WORKER_CLASS
and MLDEPLOY_THREADS settings; no access log), without its model preloading."""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from mldeploy.settings import WORKER_CLASSES, load_settings  # noqa: E402 - only the standard library

_settings = load_settings()
workers = 2
worker_class = WORKER_CLASSES[_settings.worker_class]
# As in gunicorn_conf.py: a sync worker given threads would become gunicorn's plain gthread.
threads = _settings.threads if _settings.worker_class == "gthread" else 1
keepalive = 5
control_socket_disable = True
accesslog = None
errorlog = "-"
loglevel = "warning"
