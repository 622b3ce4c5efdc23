"""Flask-RESTful resources: each gets its collaborators through ``resource_class_kwargs``."""

from __future__ import annotations

from flask import Response, current_app, request
from flask_restful import Resource

from mldeploy.annotations import annotate, explain_requested
from mldeploy.payload import read_json, rows_from_body
from mldeploy.playground import playground_response
from mldeploy.readiness import Readiness
from modeler.modeler import Modeler


class Predict(Resource):
    """``POST /predict``: one row or a batch in, classes and probabilities out."""

    def __init__(self, modeler: Modeler) -> None:
        self.modeler = modeler

    def post(self) -> dict:
        """Score the rows in the JSON body (``?explain=true`` adds each row's decision path)."""
        explain = explain_requested(request)
        rows = rows_from_body(read_json(request), current_app.config["MAX_BATCH_ROWS"])
        result = self.modeler.infer(rows)
        probabilities = result.probability_dicts()
        if result.single:
            body = {
                "Class": result.labels[0],
                "Input": dict(zip(result.features, result.rows[0], strict=True)),
                "Probabilities": probabilities[0],
                "ModelVersion": result.version,
            }
            annotate(result, [body], explain)
            return body
        predictions = [
            {"Class": label, "Probabilities": proba} for label, proba in zip(result.labels, probabilities, strict=True)
        ]
        annotate(result, predictions, explain)
        return {"Predictions": predictions, "ModelVersion": result.version}


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
        ready, reason = self.readiness.check()
        if ready:
            return {"status": "ready", "ModelVersion": self.readiness.modeler.version}, 200
        retry = {"Retry-After": str(current_app.config["RETRY_AFTER"])}
        return {"status": "not ready", "message": f"Model not ready: {reason}"}, 503, retry


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
