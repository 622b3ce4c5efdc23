"""The prediction log: every answered row, recorded off the request path in a real database.

``PredictionLog(database, ...)`` (:mod:`.writer`) queues records and writes them from one
background thread per process, in batches; :mod:`.store` holds the SQL backends (SQLite in WAL
mode by default, PostgreSQL for a log that several replicas share) and the schema (predictions,
and feedback for a later issue); :mod:`.export` writes the log as CSV or Parquet for
``python -m mldeploy log export``; :mod:`.timespec` reads ``1h``-style durations and ISO times.

The service records through :mod:`.recording` (one log per app, so per worker; one
``after_request`` hook; closed at the worker's exit), which builds each row's inputs and outputs
with :mod:`.answered` on the writer's thread, packed by :mod:`.packing` (one database row per
request, however many rows it answered). Its settings are ``MLDEPLOY_LOG_*`` in
:mod:`mldeploy.settings` (docs/configuration.md). In a script, ``Modeler(prediction_log=
PredictionLog(path))`` records every prediction the Modeler makes.

Reading (for export, feedback, performance and drift): ``open_store(database, create=False)``
then :meth:`.store.Store.rows` (a time window, a version, oldest first), :meth:`.store.Store.latest`
(the last N rows) and :meth:`.store.Store.request_rows` (one request by its ``X-Request-ID``).
"""

from mldeploy.monitoring.records import LogRecord, sampled
from mldeploy.monitoring.store import DEFAULT_FILE, LogDatabaseError, open_store
from mldeploy.monitoring.writer import DROP_REASONS, PredictionLog

__all__ = ["DEFAULT_FILE", "DROP_REASONS", "LogDatabaseError", "LogRecord", "PredictionLog", "open_store", "sampled"]
