"""Service settings: defaults here, ``MLDEPLOY_*`` environment variables over them, and a dict
passed to ``create_app`` (tests) over both."""

from __future__ import annotations

import os
from collections.abc import Mapping

from flask import Config, Flask

from modeler.modeler import Modeler

ENV_PREFIX = "MLDEPLOY"

DEFAULTS: dict[str, object] = {
    # Where versions are saved; None means the repository's models/ folder.
    "MODEL_DIR": None,
    # Training data: None for the bundled Iris, or a CSV path with a TARGET column.
    "DATA": None,
    "TARGET": "species",
    # Train and save a model when none is saved yet (turn off when replicas share a model).
    "LAZY_TRAIN": True,
    # Load or train the model in the background at start, so /ready turns 200 by itself.
    "WARMUP": True,
    # How often (seconds) a worker checks the current-version pointer on the request path.
    "POLL_INTERVAL": 0.5,
    # When the current version is corrupt (hash mismatch, truncated) or was saved by another
    # scikit-learn: "retrain" a fresh version or "fail" (503 with the reason). None means retrain
    # when LAZY_TRAIN is on, else fail.
    "ON_CORRUPT": None,
    "ON_INCOMPATIBLE": None,
    # Saved versions kept after each training (the current one is never deleted).
    "KEEP_VERSIONS": 10,
    "HOST": "127.0.0.1",
    "PORT": 5000,
    # Flask's own limit: bodies over it answer 413.
    "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
    # Rows in one /predict batch; more answer 413.
    "MAX_BATCH_ROWS": 10_000,
    # Seconds a client is told to wait (Retry-After) when the model is not ready.
    "RETRY_AFTER": 1,
    # The model's name in the Open Inference Protocol routes (/v2/models/<name>/...).
    "MODEL_NAME": "iris",
    # Bearer key for the admin endpoints; unset means they refuse every call (401, or 403 to a key).
    "ADMIN_KEY": None,
    # Comma-separated bearer keys for /predict, /model* and every route the table
    # (mldeploy/routes.py) does not mark open;
    # unset means those routes are open. Never logged.
    "API_KEYS": None,
    # flask-limiter limit(s) per client, e.g. "100/second;2000/minute"; unset means no limit.
    "RATE_LIMIT": None,
    # Where the limiter counts. memory:// counts per worker process; share one store
    # (e.g. redis://host:6379) so that N workers or replicas enforce one limit.
    "RATE_LIMIT_STORAGE_URI": "memory://",
    # Level of the JSON logs (one line per request at INFO).
    "LOG_LEVEL": "INFO",
}
# Settings never parsed as JSON.
RAW_TEXT = ("ADMIN_KEY", "API_KEYS", "RATE_LIMIT", "RATE_LIMIT_STORAGE_URI")

# Read by mldeploy/http/gunicorn_conf.py, before the app exists, so they are not app settings; listed here so
# that every MLDEPLOY_* name has one home (tests check manifests against this and DEFAULTS).
SERVER_ENV = {
    "MLDEPLOY_BIND": "address gunicorn binds (default MLDEPLOY_HOST:MLDEPLOY_PORT)",
    "MLDEPLOY_WORKER_TIMEOUT": "seconds a request may run before gunicorn kills and replaces its worker",
    "MLDEPLOY_GRACEFUL_TIMEOUT": "seconds workers get to finish in-flight requests after SIGTERM",
    "MLDEPLOY_PRELOAD": "0 makes each gunicorn worker load the app itself instead of the master",
    "WEB_CONCURRENCY": "gunicorn worker processes (default 2 x cores)",
    "PROMETHEUS_MULTIPROC_DIR": "where workers share metrics (default: a fresh temporary folder)",
}


def env_names() -> set[str]:
    """Every environment variable the service reads."""
    return {f"{ENV_PREFIX}_{name}" for name in DEFAULTS} | set(SERVER_ENV)


def fill(config: Config, overrides: Mapping[str, object] | None = None) -> Config:
    """Fill ``config``: defaults, then the environment, then ``overrides``."""
    config.from_mapping(DEFAULTS)
    # Values are parsed as JSON when they can be: MLDEPLOY_PORT=5001 gives an int.
    config.from_prefixed_env(prefix=ENV_PREFIX)
    # Keys are text even when they look like JSON ("123", "true", "1e5").
    for name in RAW_TEXT:
        if (raw := os.environ.get(f"{ENV_PREFIX}_{name}")) is not None:
            config[name] = raw
    if overrides:
        config.from_mapping(overrides)
    return config


def load_config(app: Flask, overrides: Mapping[str, object] | None = None) -> None:
    """Fill ``app.config`` as :func:`fill` does."""
    fill(app.config, overrides)


def settings(overrides: Mapping[str, object] | None = None) -> Config:
    """The same settings without an app, for the command line."""
    return fill(Config("."), overrides)


def make_modeler(config: Mapping[str, object]) -> Modeler:
    """The Modeler the settings describe (model directory, data, target, lazy training, polling,
    corrupt/incompatible policies, retention). A bad setting raises ValueError naming its variable."""
    try:
        return Modeler(
            model_dir=config["MODEL_DIR"],
            data=config["DATA"],
            target=config["TARGET"],
            lazy_train=bool(config["LAZY_TRAIN"]),
            poll_interval=float(config["POLL_INTERVAL"]),
            on_corrupt=config["ON_CORRUPT"],
            on_incompatible=config["ON_INCOMPATIBLE"],
            keep_versions=config["KEEP_VERSIONS"],
        )
    except ValueError as exc:
        raise ValueError(f"bad {ENV_PREFIX}_* setting: {exc}") from exc
