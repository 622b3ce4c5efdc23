# mldeploy under gunicorn. Build: docker build -t mldeploy .
# Run:   docker run -p 8000:8000 -v "$PWD/models:/models" mldeploy
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app

# Dependencies in their own layer: rebuilt only when requirements.txt changes, not with the code.
COPY requirements.txt ./
RUN pip install -r requirements.txt

# A numeric non-root user, so that Kubernetes' runAsNonRoot can verify it.
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin mldeploy \
    && mkdir -p /models \
    && chown 10001 /models

# The code, installed as a package (its dependencies came from requirements.txt above).
COPY pyproject.toml README.md app.py ./
COPY mldeploy/ mldeploy/
COPY mldeploy_client/ mldeploy_client/
COPY modeler/ modeler/
RUN pip install --no-deps .

ENV MLDEPLOY_HOST=0.0.0.0 \
    MLDEPLOY_PORT=8000 \
    MLDEPLOY_MODEL_DIR=/models

USER 10001
EXPOSE 8000

# The image has no curl: Python's own urllib asks /health (an error status raises, exit 1).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('MLDEPLOY_PORT', '8000'), timeout=3)"]

# gunicorn is PID 1's direct program, so SIGTERM from `docker stop` or Kubernetes reaches its master.
ENTRYPOINT ["gunicorn", "--config", "python:mldeploy.http.gunicorn_conf"]
