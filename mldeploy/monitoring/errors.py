"""Errors of the monitoring routes (feedback, performance, drift). They carry no HTTP status:
``mldeploy.http.errors`` maps :class:`NotLogged` to 404 and :class:`MonitoringConflict` to 409
(a :class:`~mldeploy.monitoring.store.LogDatabaseError` is a 503 there)."""

from __future__ import annotations

from modeler.errors import FieldError


class NotLogged(LookupError):
    """Feedback names a prediction the log does not hold; ``errors`` names each one."""

    def __init__(self, message: str, errors: list[FieldError]) -> None:
        super().__init__(message)
        self.errors = errors


class MonitoringConflict(Exception):
    """The request is fine, but the service's state cannot answer it (the prediction log is off,
    the version has no training reference)."""
