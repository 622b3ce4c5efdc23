"""Service settings, parsed and checked once at start into a typed, frozen :class:`Settings`.

Defaults are the field defaults below; ``MLDEPLOY_<NAME>`` environment variables (and the two
names gunicorn and prometheus-client share with other tools) override them; a dict passed to
``create_app`` (tests) overrides both. Every value goes through its field's parser, wherever it
comes from, so code that reads a setting gets it typed and never casts it. A bad value raises
:class:`SettingsError` naming the variable, what it takes and what it got; the entry points
(``python app.py``, ``python -m mldeploy ...``, gunicorn's config) print it as one line and exit 2
(``mldeploy.cli.exit_codes.EXIT_USAGE``: a bad invocation, as a bad argument is).

Only the standard library is imported here: gunicorn's config and the command line read the
settings before Flask, the data stack or prometheus-client are imported.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from modeler.modeler import Modeler

ENV_PREFIX = "MLDEPLOY_"

T = TypeVar("T")


class SettingsError(ValueError):
    """A setting's value is not one it takes; the message names the variable, for example
    ``MLDEPLOY_PORT: must be an integer from 1 to 65535, got 'abc'``."""


class Invalid(ValueError):
    """Raised by a parser: what the setting takes, e.g. ``an integer from 1 to 65535``."""


# -- parsers: each takes an environment string or a Python value (from a dict) ----------------------


def integer(low: int, high: int | None = None) -> Callable[[object], int]:
    """An int within ``[low, high]``; text such as ``"8000"`` too, never a bool or a float."""
    takes = f"an integer from {low} to {high}" if high is not None else f"an integer of at least {low}"

    def parse(value: object) -> int:
        if isinstance(value, str) and re.fullmatch(r"\s*[+-]?\d+\s*", value):
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            raise Invalid(takes)
        return value

    return parse


def number(low: float) -> Callable[[object], float]:
    """A finite float of at least ``low``; text such as ``"0.5"`` too."""
    takes = f"a number of at least {low:g}"

    def parse(value: object) -> float:
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise Invalid(takes) from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < low:
            raise Invalid(takes)
        return float(value)

    return parse


TRUE_TEXT = frozenset({"true", "1", "yes", "on"})
FALSE_TEXT = frozenset({"false", "0", "no", "off"})


def boolean(value: object) -> bool:
    """``true``/``false`` (or ``1/0``, ``yes/no``, ``on/off``, any case), or a bool."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, (str, int)) else None
    if text in TRUE_TEXT:
        return True
    if text in FALSE_TEXT:
        return False
    raise Invalid("true or false (or 1/0, yes/no, on/off)")


def one_of(*choices: str) -> Callable[[object], str]:
    """One of ``choices``, in any case (given back as spelt in ``choices``)."""
    by_lower = {c.lower(): c for c in choices}
    takes = " or ".join(f"'{c}'" for c in choices) if len(choices) < 3 else "one of " + ", ".join(choices)

    def parse(value: object) -> str:
        found = by_lower.get(value.strip().lower()) if isinstance(value, str) else None
        if found is None:
            raise Invalid(takes)
        return found

    return parse


def text(value: object) -> str:
    """Non-empty text (surrounding spaces removed)."""
    if not isinstance(value, str) or not value.strip():
        raise Invalid("non-empty text")
    return value.strip()


def path(value: object) -> Path:
    """A file-system path."""
    if isinstance(value, Path):
        return value
    return Path(text(value))


def url_name(value: object) -> str:
    """A name for a URL path segment: letters, digits, ``.``, ``_`` and ``-``."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", value.strip()):
        raise Invalid("a name of letters, digits, '.', '_' or '-'")
    return value.strip()


def optional(parse: Callable[[object], T]) -> Callable[[object], T | None]:
    """``parse``, or None for an unset (``None``) or empty value."""

    def parse_optional(value: object) -> T | None:
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        return parse(value)

    parse_optional.__doc__ = f"{parse.__doc__} Empty means unset."
    return parse_optional


def api_keys(value: object) -> tuple[str, ...]:
    """Comma-separated bearer keys (or a list of them), at least one when set; empty means none."""
    if value is None or (isinstance(value, str) and not value.strip()) or value in ((), []):
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise Invalid("comma-separated keys")
    keys = tuple(str(item).strip() for item in items if str(item).strip())
    if not keys:
        # A value of only commas would otherwise open every route: refuse it.
        raise Invalid("comma-separated keys, at least one")
    return keys


def rate_limit(value: object) -> str | None:
    """flask-limiter limits such as ``100/second;2000/minute``; empty means no limit."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    from limits import parse_many  # flask-limiter's parser; only needed when a limit is set

    try:
        parse_many(str(value))
    except ValueError:
        raise Invalid("limits such as '100/second;2000/minute'") from None
    return str(value).strip()


def storage_uri(value: object) -> str:
    """A limiter storage URI such as ``memory://`` or ``redis://host:6379``."""
    if not isinstance(value, str) or "://" not in value:
        raise Invalid("a storage URI such as memory:// or redis://host:6379")
    return value.strip()


def fraction(value: object) -> float:
    """A number from 0 to 1 (a share); text such as ``"0.25"`` too."""
    try:
        parsed = number(0)(value)
    except Invalid:
        parsed = None
    if parsed is None or parsed > 1:
        raise Invalid("a number from 0 to 1")
    return parsed


def duration(value: object) -> float:
    """A duration in seconds: ``90s``, ``30m``, ``12h``, ``7d``, ``2w``, or plain seconds."""
    from mldeploy.monitoring.timespec import parse_duration  # standard library only, read when set

    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise Invalid("a duration such as 90s, 30m, 12h, 7d or 2w")
    try:
        return parse_duration(str(value)).total_seconds()
    except ValueError:
        raise Invalid("a duration such as 90s, 30m, 12h, 7d or 2w") from None


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# gunicorn worker kinds (MLDEPLOY_WORKER_CLASS) and the class each names, as gunicorn loads it:
# gunicorn's own workers plus the drain on SIGTERM (docs/production.md, "Workers and keep-alive").
WORKER_CLASSES = {
    "gthread": "mldeploy.http.gunicorn_thread_worker.DrainingThreadWorker",
    "sync": "mldeploy.http.gunicorn_worker.DrainingSyncWorker",
}

# The servers `mldeploy serve` runs (MLDEPLOY_SERVER, `serve --server`).
SERVERS = ("gunicorn", "granian")

ANY_ORIGIN = "*"
# scheme://host[:port], nothing after: what a browser sends in its Origin header. "null" (sandboxed
# frames, file: pages) is refused on purpose: any page can send it.
ORIGIN = re.compile(r"https?://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?")


def origins(value: object) -> tuple[str, ...]:
    """Comma-separated browser origins (``scheme://host[:port]``), or ``*`` alone for any; empty
    means none."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return ()
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    found = tuple(origin for origin in (str(item).strip().rstrip("/") for item in items) if origin)
    if ANY_ORIGIN in found and len(found) > 1:
        raise Invalid("'*' alone (it allows every origin), or a list of origins without it")
    if found != (ANY_ORIGIN,) and not all(ORIGIN.fullmatch(origin) for origin in found):
        raise Invalid("origins written scheme://host[:port], e.g. https://app.example.com,http://localhost:3000")
    return found


# -- the settings ---------------------------------------------------------------------------------


def parsed_by(parse: Callable[[object], object], env: str | None = None) -> dict[str, object]:
    """A :class:`Settings` field's metadata: its parser, and its environment variable when that is
    not ``MLDEPLOY_<FIELD NAME>``."""
    return {"parse": parse, "env": env}


def default_workers() -> int:
    """gunicorn's usual worker count: two per core."""
    return 2 * (os.cpu_count() or 1)


@dataclass(frozen=True)
class Settings:
    """Every setting the service, its gunicorn config and the command line read, typed. Build it
    with :func:`load_settings`; the config key of a field is its name in upper case. A field with
    ``repr=False`` is a secret: it is never shown, in a repr or in an error."""

    # Where versions are saved; None means the repository's models/ folder.
    model_dir: Path | None = field(default=None, metadata=parsed_by(optional(path)))
    # Training data: None for the bundled Iris, or a CSV path with a TARGET column.
    data: Path | None = field(default=None, metadata=parsed_by(optional(path)))
    # The label column of that data.
    target: str = field(default="species", metadata=parsed_by(text))
    # Train and save a model when none is saved yet (turn off when replicas share a model).
    lazy_train: bool = field(default=True, metadata=parsed_by(boolean))
    # Load or train the model in the background at start, so /ready turns 200 by itself.
    warmup: bool = field(default=True, metadata=parsed_by(boolean))
    # How often (seconds) a worker checks the current-version pointer on the request path.
    poll_interval: float = field(default=0.5, metadata=parsed_by(number(0)))
    # When the current version is corrupt (hash mismatch, truncated): "retrain" a fresh version or
    # "fail" (503 with the reason). None means retrain when LAZY_TRAIN is on, else fail.
    on_corrupt: str | None = field(default=None, metadata=parsed_by(optional(one_of("retrain", "fail"))))
    # The same for a version saved by another scikit-learn.
    on_incompatible: str | None = field(default=None, metadata=parsed_by(optional(one_of("retrain", "fail"))))
    # Saved versions kept after each training (the current one is never deleted).
    keep_versions: int = field(default=10, metadata=parsed_by(integer(1)))
    # Interface `python app.py` (and gunicorn, unless BIND is set) listens on.
    host: str = field(default="127.0.0.1", metadata=parsed_by(text))
    # Port `python app.py` (and gunicorn, unless BIND is set) listens on.
    port: int = field(default=5000, metadata=parsed_by(integer(1, 65535)))
    # Flask's own limit: bodies over it answer 413.
    max_content_length: int = field(default=16 * 1024 * 1024, metadata=parsed_by(integer(1)))
    # Rows in one /predict batch; more answer 413.
    max_batch_rows: int = field(default=10_000, metadata=parsed_by(integer(1)))
    # Seconds a client is told to wait (Retry-After) when the model is not ready.
    retry_after: int = field(default=1, metadata=parsed_by(integer(0)))
    # The model's name in the Open Inference Protocol routes (/v2/models/<name>/...).
    model_name: str = field(default="iris", metadata=parsed_by(url_name))
    # Bearer key for the admin endpoints; unset means they refuse every call (401, or 403 to a key).
    admin_key: str | None = field(default=None, repr=False, metadata=parsed_by(optional(text)))
    # Bearer keys for /predict, /model* and every route the table (mldeploy/routes.py) does not
    # mark open; empty means those routes are open. Never logged.
    api_keys: tuple[str, ...] = field(default=(), repr=False, metadata=parsed_by(api_keys))
    # flask-limiter limit(s) per client, e.g. "100/second;2000/minute"; unset means no limit.
    rate_limit: str | None = field(default=None, metadata=parsed_by(rate_limit))
    # Where the limiter counts. memory:// counts per worker process; share one store
    # (e.g. redis://host:6379) so that N workers or replicas enforce one limit.
    rate_limit_storage_uri: str = field(default="memory://", metadata=parsed_by(storage_uri))
    # Level of the JSON logs (one line per request at INFO).
    log_level: str = field(default="INFO", metadata=parsed_by(one_of(*LOG_LEVELS)))
    # Origins whose web pages may call the API from a browser (CORS), or "*" for any; empty means
    # none (no CORS headers). Credentials are never allowed.
    cors_origins: tuple[str, ...] = field(default=(), metadata=parsed_by(origins))
    # Record every answered prediction (each row of /predict and /v2 answers) in the prediction
    # log, off the request path (a queue and a writer thread per worker). On by default: what was
    # answered is what ground truth and drift are computed from; it costs a few percent of req/s
    # (docs/performance.md, "Prediction log").
    log_predictions: bool = field(default=True, metadata=parsed_by(boolean))
    # The prediction log's database: a file path or a postgresql:// URL (several replicas share
    # one log there); unset means predictions.sqlite3 (WAL mode) in the model directory.
    log_database: str | None = field(default=None, metadata=parsed_by(optional(text)))
    # The share of requests logged (0 to 1), chosen by request id: all rows of a request or none,
    # and every worker and replica agrees.
    log_sample_rate: float = field(default=1.0, metadata=parsed_by(fraction))
    # Retention: delete logged rows (and their feedback) older than this (e.g. 30d); unset keeps them.
    log_max_age: float | None = field(default=None, metadata=parsed_by(optional(duration)))
    # Retention: keep at most this many of the newest logged rows; unset keeps them all.
    log_max_rows: int | None = field(default=None, metadata=parsed_by(optional(integer(1))))
    # What may wait to be written, per worker, in one-row requests (a batch's row counts a 16th:
    # mldeploy/monitoring/writer.py); beyond, records are dropped and counted
    # (mldeploy_prediction_log_dropped_total{reason="queue_full"}), never waited for.
    log_queue_size: int = field(default=100_000, metadata=parsed_by(integer(1)))
    # Queue places taken that wake the writer before its flush interval (a one-row request takes
    # one, a batch one per 16 rows, as log_queue_size counts them); also the most requests (one
    # database row each) per insert transaction.
    log_batch_size: int = field(default=1_000, metadata=parsed_by(integer(1)))
    # Seconds a logged row waits at most before its batch is written.
    log_flush_interval: float = field(default=1.0, metadata=parsed_by(number(0.001)))
    # Seconds a stopping worker waits for an unreachable database before dropping (and counting)
    # what it still holds; keep it below GRACEFUL_TIMEOUT.
    log_close_timeout: float = field(default=5.0, metadata=parsed_by(number(0)))
    # Rows that /model/performance and /model/drift read by default, and /metrics' live gauges read.
    monitoring_window: int = field(default=1000, metadata=parsed_by(integer(1, 100_000)))
    # Several models and rollouts (mldeploy/rollout/). Saved versions other than the current ones
    # (pinned routes, rollout candidates) kept loaded per worker, the least recently used dropped.
    version_cache: int = field(default=4, metadata=parsed_by(integer(1)))
    # A rollout aborts itself when its candidate's error rate passes this share (0.05 is 5 %)...
    rollout_error_limit: float = field(default=0.05, metadata=parsed_by(number(0)))
    # ...once the candidate has answered at least this many requests.
    rollout_min_requests: int = field(default=20, metadata=parsed_by(integer(1)))
    # Copies waiting for a shadow candidate (and canary agreement checks) per worker; more are dropped.
    shadow_queue: int = field(default=1000, metadata=parsed_by(integer(1)))
    # The production server `mldeploy serve` runs: gunicorn (the default: a hung request's worker
    # is replaced, queued connections are answered on SIGTERM) or granian (a Rust HTTP server, less
    # CPU per request; requirements-granian.txt). docs/production.md compares them.
    server: str = field(default="gunicorn", metadata=parsed_by(one_of(*SERVERS)))
    # gunicorn only, from here on. The address it binds; None means HOST:PORT.
    bind: str | None = field(default=None, metadata=parsed_by(optional(text)))
    # gunicorn worker processes (the name Heroku and gunicorn itself use).
    web_concurrency: int = field(default=default_workers(), metadata=parsed_by(integer(1), env="WEB_CONCURRENCY"))
    # gunicorn's worker: "gthread" keeps HTTP/1.1 connections open between requests (keep-alive)
    # and runs THREADS requests at a time per process; "sync" answers one request per connection
    # and closes it (a new TCP connection per request). Both answer queued connections on SIGTERM.
    worker_class: str = field(default="gthread", metadata=parsed_by(one_of(*WORKER_CLASSES)))
    # Threads per gthread worker: requests one process runs at once (one at a time runs Python
    # code, the GIL; more threads help while a request waits, e.g. on a slow client). Ignored by sync.
    threads: int = field(default=2, metadata=parsed_by(integer(1)))
    # Seconds a request may run before gunicorn kills and replaces its worker (0: no limit). Under
    # gthread the worker's other requests in flight are cut off with it.
    worker_timeout: int = field(default=30, metadata=parsed_by(integer(0)))
    # Seconds workers get to finish in-flight requests after SIGTERM.
    graceful_timeout: int = field(default=20, metadata=parsed_by(integer(0)))
    # Load the app (and model) once in gunicorn's master; false makes each worker load it itself.
    preload: bool = field(default=True, metadata=parsed_by(boolean))
    # Where gunicorn's workers share metrics (prometheus-client's own variable); None means a
    # fresh temporary folder.
    prometheus_multiproc_dir: Path | None = field(
        default=None, metadata=parsed_by(optional(path), env="PROMETHEUS_MULTIPROC_DIR")
    )

    def as_config(self) -> dict[str, object]:
        """``{CONFIG KEY: value}`` for ``app.config``: the same typed values."""
        return {f.name.upper(): getattr(self, f.name) for f in dataclasses.fields(self)}

    @property
    def gunicorn_bind(self) -> str:
        """The address gunicorn binds: BIND, else HOST:PORT."""
        return self.bind or f"{self.host}:{self.port}"


def env_name(f: dataclasses.Field) -> str:
    """The environment variable of a :class:`Settings` field."""
    return f.metadata["env"] or ENV_PREFIX + f.name.upper()


FIELDS = {f.name.upper(): f for f in dataclasses.fields(Settings)}
# The defaults by config key: what app.config holds before the environment and overrides.
DEFAULTS: Mapping[str, object] = MappingProxyType(Settings().as_config())


def env_names() -> set[str]:
    """Every environment variable the service reads (the settings' names)."""
    return {env_name(f) for f in FIELDS.values()}


def _parsed(f: dataclasses.Field, value: object, source: str) -> object:
    try:
        return f.metadata["parse"](value)
    except Invalid as exc:
        got = f", got {value!r}" if f.repr else ""  # a field kept out of repr is a secret
        raise SettingsError(f"{source}: must be {exc}{got}") from None


def load_settings(overrides: Mapping[str, object] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """The settings: defaults, then ``environ`` (default ``os.environ``), then ``overrides`` (by
    config key, e.g. ``{"MODEL_DIR": ...}``; keys that are no setting are ignored here). Raises
    :class:`SettingsError` for the first bad value."""
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    values = {}
    for key, f in FIELDS.items():
        if key in overrides:
            values[f.name] = _parsed(f, overrides[key], f"config[{key!r}]")
        elif (raw := environ.get(env_name(f))) is not None:
            values[f.name] = _parsed(f, raw, env_name(f))
    return Settings(**values)


def argument(key: str) -> Callable[[str], object]:
    """An argparse ``type`` that parses a command-line option as setting ``key`` is parsed (so
    ``--port`` takes what ``MLDEPLOY_PORT`` takes, and says so in the same words)."""
    return parsed_argument(FIELDS[key].metadata["parse"])


def parsed_argument(parse: Callable[[object], object]) -> Callable[[str], object]:
    """An argparse ``type`` from one of this module's parsers (``integer(1)``, ``number(0)``...):
    an option takes what the parser takes, and a bad one says so in the settings' words."""
    import argparse  # only the command line needs it

    def parse_argument(value: str) -> object:
        try:
            return parse(value)
        except Invalid as exc:
            raise argparse.ArgumentTypeError(f"must be {exc}, got {value!r}") from None

    return parse_argument


def make_modeler(settings: Settings) -> Modeler:
    """The Modeler the settings describe (model directory, data, target, lazy training, polling,
    corrupt/incompatible policies, retention)."""
    from modeler.modeler import Modeler  # the data stack: only once a model is wanted

    return Modeler(
        model_dir=settings.model_dir,
        data=settings.data,
        target=settings.target,
        lazy_train=settings.lazy_train,
        poll_interval=settings.poll_interval,
        on_corrupt=settings.on_corrupt,
        on_incompatible=settings.on_incompatible,
        keep_versions=settings.keep_versions,
    )
