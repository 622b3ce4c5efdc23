"""The prediction log: every answered row, recorded off the request path in a real database.

``PredictionLog(database, ...)`` (:mod:`.writer`) queues records and writes them from one
background thread per process, in batches; :mod:`.store` holds the SQL backends (SQLite in WAL
mode by default, PostgreSQL for a log that several replicas share) and the schema (predictions,
and feedback for a later issue); :mod:`.export` writes the log as CSV or Parquet for
``python -m mldeploy log export``; :mod:`.timespec` reads ``1h``-style durations and ISO times.

The package takes its settings as constructor arguments; the service's typed settings will read
them from (name, type, default: meaning):

- ``MLDEPLOY_LOG_PREDICTIONS``, bool, ``true``: record answered predictions at all.
- ``MLDEPLOY_LOG_DATABASE``, str, ``<MLDEPLOY_MODEL_DIR>/predictions.sqlite3``: a SQLite file
  path, or a ``postgresql://user:password@host:port/db`` URL for a log shared by replicas.
- ``MLDEPLOY_LOG_SAMPLE_RATE``, float in [0, 1], ``1.0``: the share of requests recorded, chosen
  by request id (all rows of a request or none; every replica agrees).
- ``MLDEPLOY_LOG_MAX_AGE``, duration (``30d``, ``12h``: :func:`.timespec.parse_duration`), unset:
  delete rows older than this; unset keeps them.
- ``MLDEPLOY_LOG_MAX_ROWS``, int, unset: keep at most this many of the newest rows.
- ``MLDEPLOY_LOG_QUEUE_SIZE``, int, ``50000``: rows waiting per worker; beyond, records are
  dropped (counted).
- ``MLDEPLOY_LOG_BATCH_SIZE``, int, ``1000``: rows per insert transaction.
- ``MLDEPLOY_LOG_FLUSH_INTERVAL``, float seconds, ``1.0``: the longest a row waits for a batch.
- ``MLDEPLOY_LOG_CLOSE_TIMEOUT``, float seconds, ``5.0``: how long a stopping worker waits for an
  unreachable database before dropping its queue (keep it under ``MLDEPLOY_GRACEFUL_TIMEOUT``).

``MLDEPLOY_MODEL_NAME`` gives the ``model`` recorded with each row.
"""

from mldeploy.monitoring.records import LogRecord, sampled
from mldeploy.monitoring.store import DEFAULT_FILE, LogDatabaseError, open_store
from mldeploy.monitoring.writer import DROP_REASONS, PredictionLog

__all__ = ["DEFAULT_FILE", "DROP_REASONS", "LogDatabaseError", "LogRecord", "PredictionLog", "open_store", "sampled"]
