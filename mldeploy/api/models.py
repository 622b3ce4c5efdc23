"""Resources for several models, pinned versions and rollouts.

The prediction resources are the ``/predict`` family's own (:class:`~mldeploy.api.resources.Predict`,
the V2 ones), handed the served model of the request (:mod:`mldeploy.rollout.routing`) in place
of the Modeler: one code path, whatever the model, the version or the rollout.
"""

from __future__ import annotations

from flask import Response, request
from flask_restful import Resource

from mldeploy.api.payload import read_object
from mldeploy.api.resources import Predict
from mldeploy.api.v2.resources import ModelInfer, ModelMetadata, ModelReady
from mldeploy.http.auth import admin_required
from mldeploy.http.readiness import Readiness
from mldeploy.monitoring.monitor import Monitor
from mldeploy.rollout import control
from mldeploy.rollout.live import LIVE_PERFORMANCE, live_performance
from mldeploy.rollout.routing import ServedModels
from mldeploy.rollout.state import read_rollout
from modeler.errors import FieldError, InvalidInput

# Keys of the rollout bodies.
VERSION, PERCENT, SHADOW, REASON = "version", "percent", "shadow", "reason"
DEFAULT_PERCENT = 10.0


class Models(Resource):
    """``GET /models``: every model served, its current version and its rollout."""

    def __init__(self, models: ServedModels) -> None:
        self.models = models

    def get(self) -> dict:
        """The default model first, then the others by name."""
        listed = []
        for name in self.models.names():
            folder = self.models.registry.folder(name)
            store = self.models.registry.get(name).store
            rollout = read_rollout(folder)
            listed.append(
                {
                    "name": name,
                    "current": store.current_version(),
                    "default": name == self.models.default_name,
                    "rollout": rollout.as_dict() if rollout is not None and rollout.active else None,
                }
            )
        return {"default": self.models.default_name, "models": listed}


class DefaultPredict(Predict):
    """``POST /predict``: the default model, split by its rollout when it has one."""

    def __init__(self, models: ServedModels) -> None:
        super().__init__(models.routed())  # type: ignore[arg-type] - a served model answers as a Modeler does


class NamedPredict(Predict):
    """``POST /models/<name>/predict``: /predict for the model named in the path."""

    def __init__(self, models: ServedModels) -> None:
        self.models = models

    def post(self, model_name: str) -> dict:
        """/predict's answer, from the model's current version (or its rollout's choice)."""
        self.modeler = self.models.routed(model_name)
        return super().post()


class PinnedPredict(Predict):
    """``POST /models/<name>/versions/<version>/predict``: /predict from one saved version."""

    def __init__(self, models: ServedModels) -> None:
        self.models = models

    def post(self, model_name: str, model_version: str) -> dict:
        """/predict's answer from that version, current or not."""
        self.modeler = self.models.pinned(model_name, model_version)
        return super().post()


def served(models: ServedModels, model_name: str, model_version: str | None):
    """The model a /v2 route answers for: pinned to the path's version when it names one."""
    if model_version is None:
        return models.routed(model_name)
    return models.pinned(model_name, model_version)


class NamedModelMetadata(ModelMetadata):
    """``GET /v2/models/<name>[/versions/<version>]``: any served model, any saved version."""

    def __init__(self, models: ServedModels) -> None:
        self.models = models

    def get(self, model_name: str, model_version: str | None = None) -> dict:
        self.modeler = served(self.models, model_name, model_version)
        return super().get(model_name, model_version)


class NamedModelReady(ModelReady):
    """``GET /v2/models/<name>[/versions/<version>]/ready``: the default model's readiness, or
    whether another model (or saved version) loads."""

    def __init__(self, readiness: Readiness, models: ServedModels) -> None:
        super().__init__(readiness)
        self.models = models

    def get(self, model_name: str, model_version: str | None = None) -> tuple[dict, int]:
        """200 once the model (or the saved version) is loaded."""
        if model_name == self.models.default_name and model_version is None:
            return super().get(model_name)
        return self._loads(model_name, model_version)

    def _loads(self, model_name: str, model_version: str | None) -> tuple[dict, int]:
        served(self.models, model_name, model_version).ensure_ready()
        return {"name": model_name, "ready": True}, 200


class NamedModelInfer(ModelInfer):
    """``POST /v2/models/<name>[/versions/<version>]/infer``: any served model; a version in the
    path answers from that saved version, current or not."""

    def __init__(self, models: ServedModels) -> None:
        self.models = models

    def post(self, model_name: str, model_version: str | None = None) -> Response:
        self.modeler = served(self.models, model_name, model_version)
        return super().post(model_name, model_version)


class RolloutStatus(Resource):
    """``GET /models/<name>/rollout``: the model's last rollout and how its versions compare."""

    def __init__(self, models: ServedModels, monitor: Monitor) -> None:
        self.models = models
        self.monitor = monitor

    def get(self, model_name: str) -> dict:
        """Figures of every worker, as of their last flush, and each version's live performance
        from ground truth (``POST /feedback``) since the rollout started."""
        rollout = self.models.rollout_of(model_name)
        rollout.counters.flush()  # this worker's own counts, now
        found = control.status(rollout.folder, model_name)
        if found.get("rollout") is not None:
            found[LIVE_PERFORMANCE] = self._live(model_name, found["rollout"])
        return found

    def _live(self, model_name: str, rollout: dict) -> dict | None:
        """Each version's live performance since the rollout started; None while the log is off."""
        if not self.monitor.enabled:
            return None
        with self.monitor.store() as store:
            return live_performance(
                store, model_name, rollout, self.models.registry.get(model_name).store.read_metadata
            )


class RolloutStart(Resource):
    """``POST /models/<name>/rollout/start`` (admin): start a canary or a shadow."""

    def __init__(self, models: ServedModels) -> None:
        self.models = models

    @admin_required
    def post(self, model_name: str) -> tuple[dict, int]:
        """Body: ``{"version": ..., "percent": 10, "shadow": false}``; 201 with the rollout."""
        body = read_object(request, allowed=(VERSION, PERCENT, SHADOW), required=(VERSION,))
        version, shadow = body[VERSION], body.get(SHADOW, False)
        errors = []
        if not isinstance(version, str) or not version:
            errors.append(FieldError(None, VERSION, "must be a version id (a non-empty string)"))
        if not isinstance(shadow, bool):
            errors.append(FieldError(None, SHADOW, "must be true or false"))
        if errors:
            raise InvalidInput(errors)
        rollout = self.models.rollout_of(model_name)
        started = control.start(
            rollout.modeler, model_name, version, percent=body.get(PERCENT, DEFAULT_PERCENT), shadow=shadow
        )
        rollout.follower.refresh()
        return {"model": model_name, "rollout": started.as_dict()}, 201


class RolloutPromote(Resource):
    """``POST /models/<name>/rollout/promote`` (admin): the candidate becomes current."""

    def __init__(self, models: ServedModels) -> None:
        self.models = models

    @admin_required
    def post(self, model_name: str) -> dict:
        """The ended rollout; 409 when none is active."""
        read_object(request, allowed=())
        rollout = self.models.rollout_of(model_name)
        ended = control.promote(rollout.modeler, model_name)
        rollout.follower.refresh()
        return {"model": model_name, "rollout": ended.as_dict()}


class RolloutAbort(Resource):
    """``POST /models/<name>/rollout/abort`` (admin): end the rollout, the baseline answers all."""

    def __init__(self, models: ServedModels) -> None:
        self.models = models

    @admin_required
    def post(self, model_name: str) -> dict:
        """Optional body ``{"reason": "..."}``; the ended rollout; 409 when none is active."""
        reason = read_object(request, allowed=(REASON,)).get(REASON, "aborted by hand")
        if not isinstance(reason, str) or not reason.strip():
            raise InvalidInput([FieldError(None, REASON, "must be non-empty text")])
        rollout = self.models.rollout_of(model_name)
        ended = control.abort(rollout.folder, model_name, reason)
        rollout.follower.refresh()
        return {"model": model_name, "rollout": ended.as_dict()}
