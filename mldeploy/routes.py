"""Every route of the service, in one table."""

from __future__ import annotations

from flask_restful import Api

from mldeploy.readiness import Readiness
from mldeploy.resources import Health, ModelInfo, Predict, Ready
from modeler.modeler import Modeler


def register_routes(api: Api, modeler: Modeler, readiness: Readiness) -> None:
    """Bind each resource to its URL; this list is the API's table of contents."""
    api.add_resource(Predict, "/predict", resource_class_kwargs={"modeler": modeler})
    api.add_resource(Health, "/health")
    api.add_resource(Ready, "/ready", resource_class_kwargs={"readiness": readiness})
    api.add_resource(ModelInfo, "/model", resource_class_kwargs={"modeler": modeler})
