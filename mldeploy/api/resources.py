"""Flask-RESTful resources: each gets its collaborators through ``resource_class_kwargs``."""

from __future__ import annotations

from collections.abc import Sequence

from flask import Response, current_app, request
from flask_restful import Resource

from mldeploy.api.annotations import explain_requested
from mldeploy.api.answers import predict_answer
from mldeploy.api.payload import parse_json, read_body, read_object, rows_from_body
from mldeploy.api.records import decode_records
from mldeploy.contract import MODEL_VERSION
from mldeploy.docs.playground import playground_response
from mldeploy.http import metrics, request_context
from mldeploy.http.auth import admin_required
from mldeploy.http.readiness import Readiness, retry_after
from modeler.errors import FieldError, InvalidInput
from modeler.modeler import Modeler
from modeler.recipe import shown_to_clients
from modeler.schema import SCHEMA, Schema

# Keys of the admin bodies.
ESTIMATOR = "estimator"
PARAMS = "params"
ALLOW_SCHEMA_CHANGE = "allow_schema_change"
VERSION = "version"
# The metadata key of a version's task, and what a version saved without one is.
TASK, CLASSIFICATION = "task", "classification"
# The key of /ready's answer that says the settings disagree with the version served.
WARNING = "warning"


class Predict(Resource):
    """``POST /predict``: one row or a batch in; the model's answers out (``Class`` and
    ``Probabilities``, or a regressor's ``Prediction``)."""

    def __init__(self, modeler: Modeler) -> None:
        self.modeler = modeler

    def post(self) -> dict:
        """Score the rows in the JSON body (``?explain=true`` adds each row's decision path)."""
        req = request._get_current_object()  # one proxy look-up, not one per attribute (2 µs each)
        explain = explain_requested(req)
        raw, max_rows = read_body(req), current_app.config["MAX_BATCH_ROWS"]

        # A batch of records goes straight from bytes to floats for the model's fields
        # (mldeploy/api/records.py); anything else, and anything it does not take, as ever.
        def general() -> object:
            return rows_from_body(parse_json(raw), max_rows)

        rows = decode_records(raw, self._fields, max_rows, general) or general()
        result = self.modeler.infer(rows)
        request_context.note_inference(result)
        warnings = result.out_of_range()
        if warnings:
            metrics.count_out_of_range(w.field for found in warnings.values() for w in found)
        return predict_answer(result, explain=explain, warnings=warnings, serialised=True)

    def _fields(self) -> Sequence[str] | None:
        """The fields of the version that answers now when it is loaded and all plain numbers
        (the typed records reader's case); else None. Never loads a model: a body is read
        before a model that is not ready answers 503, as before."""
        modeler = self.modeler
        if not modeler.is_ready:
            return None
        model = modeler.ensure_ready()
        return model.features if model.schema.numeric_only else None


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
        """The current version's metadata, its input ``schema`` always among it (a version saved
        before schemas were recorded shows the one it reads as: every feature a number)."""
        return described(self.modeler.ensure_ready().metadata)


def described(metadata: dict) -> dict:
    """What ``/model`` (and the train and activate answers) show of a version: its metadata for
    clients, with the input ``schema`` and the ``task`` it reads as (a version saved before they
    were recorded: every feature a number, a classifier)."""
    shown = shown_to_clients(metadata)
    shown[SCHEMA] = Schema.from_metadata(metadata).as_metadata()
    shown.setdefault(TASK, CLASSIFICATION)
    return shown


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
        """Body (optional): ``{"estimator": NAME, "params": {parameter: value},
        "allow_schema_change": false}``. ``estimator`` is a scikit-learn class name (the current
        version's estimator when left out); ``params`` are checked against its own rules (400
        naming each bad one). Answers 201 with the new metadata; 409 when the data's input fields
        differ from the current version's and ``allow_schema_change`` is not true."""
        body = read_object(request, allowed=(ESTIMATOR, PARAMS, ALLOW_SCHEMA_CHANGE))
        estimator = body.get(ESTIMATOR)
        params, allow = body.get(PARAMS, {}), body.get(ALLOW_SCHEMA_CHANGE, False)
        errors = []
        if ESTIMATOR in body and (not isinstance(estimator, str) or not estimator):
            errors.append(FieldError(None, ESTIMATOR, "must be a scikit-learn estimator class name"))
        if not isinstance(params, dict):
            errors.append(FieldError(None, PARAMS, "must be an object of the estimator's parameters"))
        if not isinstance(allow, bool):
            errors.append(FieldError(None, ALLOW_SCHEMA_CHANGE, "must be true or false"))
        if errors:
            raise InvalidInput(errors)
        options: dict = {"allow_schema_change": allow}
        if estimator is not None:
            options["estimator"] = estimator
        return described(self.modeler.fit(params, **options).metadata), 201


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
        return described(self.modeler.activate(version))
