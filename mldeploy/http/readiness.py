"""Making the model ready at start, in the background, and reporting why it is not ready yet."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from flask import current_app

from modeler.errors import ModelNotReady
from modeler.modeler import Modeler

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadinessAnswer:
    """What every readiness probe answers: ready with the version served, or why not."""

    ready: bool
    version: str | None = None
    reason: str | None = None

    @property
    def message(self) -> str:
        """The reason as probes and errors word it."""
        return f"Model not ready: {self.reason}"


def retry_after() -> dict[str, str]:
    """The header a not-ready answer carries: when to ask again (``MLDEPLOY_RETRY_AFTER``)."""
    return {"Retry-After": str(current_app.config["RETRY_AFTER"])}


class Readiness:
    """Warms a Modeler up in a background thread and answers "ready, or why not"."""

    def __init__(self, modeler: Modeler) -> None:
        self.modeler = modeler
        self.error: str | None = None
        self._thread: threading.Thread | None = None

    def start_warmup(self) -> None:
        """Load (or lazily train) the model in a daemon thread, so /health answers meanwhile."""
        self._thread = threading.Thread(target=self.warm_up, name="mldeploy-warmup", daemon=True)
        self._thread.start()

    def warm_up(self) -> bool:
        """Make the model ready now; returns whether it is, and remembers the reason if not."""
        try:
            self.modeler.ensure_ready()
        except ModelNotReady as exc:
            self.error = str(exc)  # shown to clients by /ready: no path; the log line has it
            log.error("model not ready: %s", exc.detail())
            return False
        self.error = None
        return True

    def check(self) -> tuple[bool, str | None]:
        """``(ready, reason)``. Retries a failed warm-up, so fixing the cause needs no restart."""
        if self.modeler.is_ready:
            return True, None
        if self._thread is not None and self._thread.is_alive():
            return False, "the model is loading or training"
        if self.warm_up():
            return True, None
        return False, self.error

    def answer(self) -> ReadinessAnswer:
        """The one readiness answer behind ``/ready``, ``/v2/health/ready`` and
        ``/v2/models/<name>/ready``; each only words it in its protocol."""
        ready, reason = self.check()
        if ready:
            return ReadinessAnswer(True, version=self.modeler.version)
        return ReadinessAnswer(False, reason=reason or "the model is loading")
