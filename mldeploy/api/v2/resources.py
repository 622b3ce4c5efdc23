"""Open Inference Protocol (KServe V2) REST resources; the protocol itself is in
:mod:`mldeploy.api.v2.protocol`, and their errors read ``{"error": "..."}`` (see ``mldeploy.http.errors``)."""

from __future__ import annotations

from flask import Response, current_app, request
from flask_restful import Resource

import mldeploy
from mldeploy.api.v2.protocol import (
    EXTENSIONS,
    infer_response,
    model_metadata,
    output_names,
    read_request,
    requested_outputs,
    rows_from_request,
)
from mldeploy.http import request_context
from mldeploy.http.readiness import Readiness, retry_after
from modeler.errors import ModelNotReady, VersionNotFound
from modeler.modeler import Modeler

SERVER_NAME = "mldeploy"


# app.extensions key of the server's models (mldeploy.rollout.routing.ServedModels), when it has several.
MODELS_EXTENSION = "mldeploy_models"


def check_model_name(model_name: str) -> None:
    """404 unless ``model_name`` is a served model's name (``MLDEPLOY_MODEL_NAME``, or another
    model of the model directory)."""
    models = current_app.extensions.get(MODELS_EXTENSION)
    if models is not None:
        # A dict look-up for a model already served; only an unknown name lists the model
        # directory (that listing on every request cost a one-row /v2 infer about 70-80 µs of CPU).
        models.registry.get(model_name)
    elif model_name != current_app.config["MODEL_NAME"]:
        raise VersionNotFound(f"unknown model {model_name!r}: this server serves {current_app.config['MODEL_NAME']!r}")


def check_version(served: str, model_version: str | None) -> None:
    """404 unless ``model_version`` is unset or names the ``served`` version."""
    if model_version is not None and model_version != served:
        raise VersionNotFound(f"no version {model_version!r} is served: the current one is {served}")


class ServerMetadata(Resource):
    """``GET /v2``: the server's name, version and protocol extensions."""

    def get(self) -> dict:
        """Server metadata."""
        # The package's version: the OpenAPI document states the same one.
        return {"name": SERVER_NAME, "version": mldeploy.__version__, "extensions": list(EXTENSIONS)}


class ServerLive(Resource):
    """``GET /v2/health/live``: 200 while the process serves requests."""

    def get(self) -> dict:
        """Liveness."""
        return {"live": True}


class ServerReady(Resource):
    """``GET /v2/health/ready``: 200 once the model is loaded, else 503."""

    def __init__(self, readiness: Readiness) -> None:
        self.readiness = readiness

    def get(self) -> tuple[dict, int] | tuple[dict, int, dict]:
        """Readiness."""
        answer = self.readiness.answer()
        if answer.ready:
            return {"ready": True}, 200
        return {"ready": False, "error": answer.message}, 503, retry_after()


class ModelMetadata(Resource):
    """``GET /v2/models/<name>[/versions/<version>]``: inputs and outputs with datatypes and shapes."""

    def __init__(self, modeler: Modeler) -> None:
        self.modeler = modeler

    def get(self, model_name: str, model_version: str | None = None) -> dict:
        """Model metadata from the served version."""
        check_model_name(model_name)
        model = self.modeler.ensure_ready()
        check_version(model.version, model_version)
        return model_metadata(model_name, model)


class ModelReady(Resource):
    """``GET /v2/models/<name>[/versions/<version>]/ready``: 200 once that model is loaded."""

    def __init__(self, readiness: Readiness) -> None:
        self.readiness = readiness

    def get(self, model_name: str, model_version: str | None = None) -> tuple[dict, int]:
        """Model readiness."""
        check_model_name(model_name)
        answer = self.readiness.answer()
        if not answer.ready:
            raise ModelNotReady(str(answer.reason))
        check_version(str(answer.version), model_version)
        return {"name": model_name, "ready": True}, 200


class ModelInfer(Resource):
    """``POST /v2/models/<name>[/versions/<version>]/infer``: tensors in, the model's outputs out
    (label and probabilities for a classifier, prediction for a regressor)."""

    def __init__(self, modeler: Modeler) -> None:
        self.modeler = modeler

    def post(self, model_name: str, model_version: str | None = None) -> Response:
        """Check the request, predict, wrap the response tensors."""
        check_model_name(model_name)
        model = self.modeler.ensure_ready()
        check_version(model.version, model_version)
        body, binary = read_request(request._get_current_object())  # its attributes, without the proxy
        outputs = requested_outputs(body, output_names(model.predictor))
        rows = rows_from_request(body, binary, model.schema, current_app.config["MAX_BATCH_ROWS"])
        result = self.modeler.infer(rows)
        request_context.note_inference(result)
        if model_version is not None and result.version != model_version:  # switched meanwhile
            raise VersionNotFound(f"version {model_version!r} is no longer served: the current one is {result.version}")
        return infer_response(model_name, result, outputs, body.get("id"))
