"""Flask-RESTful resources: each gets its collaborators through ``resource_class_kwargs``."""

from __future__ import annotations

from flask import Response, current_app, request
from flask_restful import Resource

from mldeploy.api.annotations import explain_requested
from mldeploy.api.answers import predict_answer
from mldeploy.api.payload import read_json, read_object, rows_from_body
from mldeploy.contract import MODEL_VERSION
from mldeploy.docs.playground import playground_response
from mldeploy.http import metrics, request_context
from mldeploy.http.auth import admin_required
from mldeploy.http.readiness import Readiness, retry_after
from modeler.errors import FieldError, InvalidInput
from modeler.modeler import Modeler
from modeler.recipe import shown_to_clients

# Keys of the admin bodies.
PARAMS = "params"
ALLOW_SCHEMA_CHANGE = "allow_schema_change"
VERSION = "version"
# The key of /ready's answer that says the settings disagree with the version served.
WARNING = "warning"


class Predict(Resource):
    """``POST /predict``: one row or a batch in, classes and probabilities out."""

    def __init__(self, modeler: Modeler) -> None:
        self.modeler = modeler

    def post(self) -> dict:
        """Score the rows in the JSON body (``?explain=true`` adds each row's decision path)."""
        explain = explain_requested(request)
        rows = rows_from_body(read_json(request), current_app.config["MAX_BATCH_ROWS"])
        result = self.modeler.infer(rows)
        request_context.note_inference(result)
        warnings = result.out_of_range()
        if warnings:
            metrics.count_out_of_range(w.field for found in warnings.values() for w in found)
        return predict_answer(result, explain=explain, warnings=warnings, serialised=True)


class Health(Resource):
    """``GET /health``: the process is alive (answers before the model is loaded)."""

    def get(self) -> dict:
        """Always 200 while the process serves requests."""
        return {"status": "ok"}


class Ready(Resource):
    """``GET /ready``: 200 once the model is loaded, 503 with the reason until then."""

    def __init__(self, readiness: Readiness) -> None:
        self.readiness = readiness

    def get(self) -> tuple[dict, int] | tuple[dict, int, dict]:
        """Readiness, for load balancers and orchestrators."""
        answer = self.readiness.answer()
        if not answer.ready:
            return {"status": "not ready", "message": answer.message}, 503, retry_after()
        body = {"status": "ready", MODEL_VERSION: answer.version}
        # Settings that name other data than the version served do not stop it serving (taking
        # every replica out of a load balancer for it would be an outage): ready, with a warning.
        conflict = self.readiness.modeler.settings_conflict()
        if conflict:
            body[WARNING] = conflict
        return body, 200


class ModelInfo(Resource):
    """``GET /model``: metadata of the version being served."""

    def __init__(self, modeler: Modeler) -> None:
        self.modeler = modeler

    def get(self) -> dict:
        """The current version's metadata."""
        return shown_to_clients(self.modeler.metadata)


class Playground(Resource):
    """``GET /``: a page to try the model by hand (sliders, probabilities, decision path)."""

    def get(self) -> Response:
        """The self-contained playground page."""
        return playground_response()


class ModelVersions(Resource):
    """``GET /model/versions``: every saved version (oldest first), the current one marked."""

    def __init__(self, modeler: Modeler) -> None:
        self.modeler = modeler

    def get(self) -> dict:
        """A summary of each saved version and the id of the current one."""
        versions = self.modeler.versions(summary=True)
        current = next((v["version"] for v in versions if v["current"]), None)
        return {"current": current, "versions": versions}


class ModelTrain(Resource):
    """``POST /model/train`` (admin): train a new version on the configured data, make it current."""

    def __init__(self, modeler: Modeler) -> None:
        self.modeler = modeler

    @admin_required
    def post(self) -> tuple[dict, int]:
        """Body (optional): ``{"params": {tree parameter: value}, "allow_schema_change": false}``.
        Answers 201 with the new metadata; 409 when the data's input fields differ from the
        current version's and ``allow_schema_change`` is not true."""
        body = read_object(request, allowed=(PARAMS, ALLOW_SCHEMA_CHANGE))
        params, allow = body.get(PARAMS, {}), body.get(ALLOW_SCHEMA_CHANGE, False)
        errors = []
        if not isinstance(params, dict):
            errors.append(FieldError(None, PARAMS, "must be an object of tree parameters"))
        if not isinstance(allow, bool):
            errors.append(FieldError(None, ALLOW_SCHEMA_CHANGE, "must be true or false"))
        if errors:
            raise InvalidInput(errors)
        return shown_to_clients(self.modeler.fit(params, allow_schema_change=allow).metadata), 201


class ModelActivate(Resource):
    """``POST /model/activate`` (admin): make a saved version current; this is how to roll back."""

    def __init__(self, modeler: Modeler) -> None:
        self.modeler = modeler

    @admin_required
    def post(self) -> dict:
        """Body: ``{"version": "<id>"}``. Answers the activated version's metadata; 404 if unknown."""
        version = read_object(request, allowed=(VERSION,), required=(VERSION,))[VERSION]
        if not isinstance(version, str) or not version:
            raise InvalidInput([FieldError(None, VERSION, "must be a version id (a non-empty string)")])
        return shown_to_clients(self.modeler.activate(version))
