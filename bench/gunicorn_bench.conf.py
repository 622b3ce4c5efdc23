"""gunicorn settings for the bench's baseline and floor servers: the same worker model as
mldeploy/http/gunicorn_conf.py (sync workers, no access log), without its model preloading."""

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

workers = 2
keepalive = 5
control_socket_disable = True
accesslog = None
errorlog = "-"
loglevel = "warning"
