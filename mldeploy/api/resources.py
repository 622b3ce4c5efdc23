"""Flask-RESTful resources: each gets its collaborators through ``resource_class_kwargs``."""

from __future__ import annotations

from flask import Response, current_app, request
from flask_restful import Resource

from mldeploy.api.annotations import annotate, explain_requested
from mldeploy.api.payload import read_json, read_object, rows_from_body
from mldeploy.contract import CLASS, INPUT, MODEL_VERSION, PREDICTIONS, PROBABILITIES
from mldeploy.docs.playground import playground_response
from mldeploy.http import request_context
from mldeploy.http.auth import admin_required
from mldeploy.http.jsonio import leaf_answers
from mldeploy.http.readiness import Readiness, retry_after
from modeler.errors import FieldError, InvalidInput
from modeler.modeler import Modeler

# Keys of the admin bodies.
PARAMS = "params"
VERSION = "version"


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
        # Each leaf's answer is serialised JSON already: a row costs a list look-up.
        answers = leaf_answers(result.tree)
        warnings = result.out_of_range()
        if result.single:
            leaf = result.leaves[0]
            body = {
                CLASS: result.tree.leaf_labels[leaf],
                INPUT: dict(zip(result.features, result.rows[0], strict=True)),
                PROBABILITIES: answers.probabilities[leaf],
                MODEL_VERSION: result.version,
            }
            annotate(result, [body], explain, warnings)
            return body
        leaves = result.leaves.tolist()
        if explain:  # every row gets an explanation: plain dicts throughout
            predictions = [answers.prediction_dict(leaf) for leaf in leaves]
        else:
            predictions = [answers.predictions[leaf] for leaf in leaves]
            for row in warnings:  # rows that get warnings need a dict to carry them
                predictions[row] = answers.prediction_dict(leaves[row])
        annotate(result, predictions, explain, warnings)
        return {PREDICTIONS: predictions, MODEL_VERSION: result.version}


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
        if answer.ready:
            return {"status": "ready", MODEL_VERSION: answer.version}, 200
        return {"status": "not ready", "message": answer.message}, 503, retry_after()


class ModelInfo(Resource):
    """``GET /model``: metadata of the version being served."""

    def __init__(self, modeler: Modeler) -> None:
        self.modeler = modeler

    def get(self) -> dict:
        """The current version's metadata."""
        return self.modeler.metadata


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
        """Body (optional): ``{"params": {tree parameter: value}}``. Answers 201 with the new metadata."""
        params = read_object(request, allowed=(PARAMS,)).get(PARAMS, {})
        if not isinstance(params, dict):
            raise InvalidInput([FieldError(None, PARAMS, "must be an object of tree parameters")])
        return self.modeler.fit(**params).metadata, 201


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
        return self.modeler.activate(version)
