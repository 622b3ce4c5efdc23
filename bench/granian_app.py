"""mldeploy's WSGI app for Granian (bench/servers.py): the set-up gunicorn_conf.py does before the
app loads (one BLAS/OpenMP thread, JSON logs with the request line), then mldeploy.http.wsgi's
app. PROMETHEUS_MULTIPROC_DIR comes from the environment the bench starts Granian with, so that
/metrics merges both workers as under gunicorn."""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from mldeploy.http.request_log import configure_logging  # noqa: E402 - after the variables above
from mldeploy.settings import load_settings  # noqa: E402

configure_logging(load_settings().log_level)

from mldeploy.http.wsgi import app  # noqa: E402, F401 - the target Granian loads
