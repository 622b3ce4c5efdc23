"""What ``Modeler(prediction_log=...)`` takes: anything that records an inference.

The model knows no database: ``mldeploy.monitoring.PredictionLog`` is the implementation (SQLite
or PostgreSQL, written off the caller's thread), and this protocol is all ``modeler`` needs of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from modeler.inference import Inference


@runtime_checkable
class PredictionRecorder(Protocol):
    """Records each prediction's rows and answers; never raises into the prediction."""

    def record_inference(self, result: Inference, request_id: str | None = None) -> str:
        """Queue ``result``'s rows; returns the request id they are recorded under (a new one
        when ``request_id`` is None)."""
        ...
