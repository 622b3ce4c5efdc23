"""Every route of the service, in one table."""

from __future__ import annotations

from flask_restful import Api

from mldeploy.api.resources import (
    Health,
    ModelActivate,
    ModelInfo,
    ModelTrain,
    ModelVersions,
    Playground,
    Predict,
    Ready,
)
from mldeploy.api.v2.resources import ModelInfer, ModelMetadata, ModelReady, ServerLive, ServerMetadata, ServerReady
from mldeploy.http.readiness import Readiness
from modeler.modeler import Modeler


def register_routes(api: Api, modeler: Modeler, readiness: Readiness) -> None:
    """Bind each resource to its URL; this list is the API's table of contents."""
    api.add_resource(Playground, "/")
    api.add_resource(Predict, "/predict", resource_class_kwargs={"modeler": modeler})
    api.add_resource(Health, "/health")
    api.add_resource(Ready, "/ready", resource_class_kwargs={"readiness": readiness})
    api.add_resource(ModelInfo, "/model", resource_class_kwargs={"modeler": modeler})
    api.add_resource(ModelVersions, "/model/versions", resource_class_kwargs={"modeler": modeler})
    api.add_resource(ModelTrain, "/model/train", resource_class_kwargs={"modeler": modeler})
    api.add_resource(ModelActivate, "/model/activate", resource_class_kwargs={"modeler": modeler})

    # Open Inference Protocol (KServe V2) REST; a version in the path must be the current one.
    model, version = "/v2/models/<string:model_name>", "/versions/<string:model_version>"
    api.add_resource(ServerMetadata, "/v2")
    api.add_resource(ServerLive, "/v2/health/live")
    api.add_resource(ServerReady, "/v2/health/ready", resource_class_kwargs={"readiness": readiness})
    api.add_resource(ModelMetadata, model, model + version, resource_class_kwargs={"modeler": modeler})
    api.add_resource(
        ModelReady,
        model + "/ready",
        model + version + "/ready",
        resource_class_kwargs={"modeler": modeler, "readiness": readiness},
    )
    api.add_resource(
        ModelInfer, model + "/infer", model + version + "/infer", resource_class_kwargs={"modeler": modeler}
    )
