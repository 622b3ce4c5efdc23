"""Every route of the service, in one table: its path, what serves it, who may call it and how each
method is documented. The Flask registration, the OpenAPI document's paths and operations
(``mldeploy.docs.openapi``) and the key checks (``mldeploy.http.auth``) all read :data:`ROUTES`,
so a route added here is served, documented and protected at once."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flask import Blueprint, Flask, Response
from flask_restful import Api, Resource

from mldeploy.api.models import (
    DefaultPredict,
    Models,
    NamedModelInfer,
    NamedModelMetadata,
    NamedModelReady,
    NamedPredict,
    PinnedPredict,
    RolloutAbort,
    RolloutPromote,
    RolloutStart,
    RolloutStatus,
)
from mldeploy.api.monitoring import Feedback, ModelDrift, ModelPerformance
from mldeploy.api.resources import (
    Health,
    ModelActivate,
    ModelInfo,
    ModelTrain,
    ModelVersions,
    Playground,
    Ready,
)
from mldeploy.api.v2.resources import ServerLive, ServerMetadata, ServerReady
from mldeploy.docs import monitoring, openapi, rollout_openapi, swagger
from mldeploy.docs.openapi import Operation
from mldeploy.http import metrics
from mldeploy.http.auth import Access
from mldeploy.http.readiness import Readiness
from mldeploy.monitoring.gauges import LiveFigures, serve_metrics
from mldeploy.monitoring.monitor import Monitor
from mldeploy.rollout.routing import ServedModels
from modeler.modeler import Modeler

# The collaborators a resource may ask for (``Route.needs``), handed over as resource_class_kwargs.
MODELER, READINESS, MONITOR, FIGURES, MODELS = "modeler", "readiness", "monitor", "figures", "models"


@dataclass(frozen=True)
class Route:
    """One documented path. It is served by exactly one of: a Flask-RESTful ``resource``, a plain
    Flask ``view``, or a ``blueprint`` (a factory; the blueprint must serve this path itself).
    ``operations`` documents each method it answers; ``aliases`` are more rules served the same
    way but left out of the document (the trailing-slash forms of the /v2 paths)."""

    path: str
    operations: Mapping[str, Operation]
    resource: type[Resource] | None = None
    view: Callable[..., Response] | None = None
    blueprint: Callable[[], Blueprint] | None = None
    needs: tuple[str, ...] = ()
    access: Access = Access.API
    aliases: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.resource, self.view, self.blueprint)) != 1:
            raise ValueError(f"route {self.path}: give exactly one of resource, view, blueprint")

    @property
    def rules(self) -> tuple[str, ...]:
        """Every Flask rule of the route: its path, then its aliases."""
        return (self.path, *self.aliases)

    @property
    def endpoint(self) -> str:
        """A Flask endpoint name unique to the route (one resource may serve several routes)."""
        return re.sub(r"[^A-Za-z0-9]+", "_", openapi.openapi_path(self.path)).strip("_") or "root"


def v2(path: str, resource: type[Resource], op: Operation, method: str = "get", **options) -> Route:
    """An Open Inference Protocol route, also served with a trailing slash: its REST document
    writes ``/v2/``, and a redirect would lose a POST's body (clients do not resend it)."""
    return Route(path, {method: op}, resource, aliases=(path + "/",), **options)


V2_MODEL = "/v2/models/<string:model_name>"
V2_VERSION = "/versions/<string:model_version>"
MODELS_PATH = "/models"
MODEL = MODELS_PATH + "/<string:model_name>"
VERSION = V2_VERSION


def v2_model(suffix: str, resource: type[Resource], op: Operation, method: str = "get", **options) -> list[Route]:
    """A per-model V2 route at ``/v2/models/<name><suffix>`` and at its ``/versions/<version>`` form."""
    return [v2(V2_MODEL + prefix + suffix, resource, op, method, **options) for prefix in ("", V2_VERSION)]


ROUTES: tuple[Route, ...] = (
    Route("/", {"get": openapi.PLAYGROUND}, Playground, access=Access.OPEN),  # the page has its own key field
    Route("/predict", {"post": openapi.PREDICT}, DefaultPredict, needs=(MODELS,)),
    Route("/health", {"get": openapi.HEALTH}, Health, access=Access.OPEN),
    Route("/ready", {"get": openapi.READY}, Ready, needs=(READINESS,), access=Access.OPEN),
    Route("/model", {"get": openapi.MODEL}, ModelInfo, needs=(MODELER,)),
    Route("/model/versions", {"get": openapi.VERSIONS}, ModelVersions, needs=(MODELER,)),
    Route("/model/train", {"post": openapi.TRAIN}, ModelTrain, needs=(MODELER,), access=Access.ADMIN),
    Route("/model/activate", {"post": openapi.ACTIVATE}, ModelActivate, needs=(MODELER,), access=Access.ADMIN),
    Route("/feedback", {"post": monitoring.FEEDBACK}, Feedback, needs=(MONITOR,)),
    Route("/model/performance", {"get": monitoring.PERFORMANCE}, ModelPerformance, needs=(MONITOR,)),
    Route("/model/drift", {"get": monitoring.DRIFT}, ModelDrift, needs=(MONITOR,)),
    # The counters of every worker, then the live gauges computed from the shared log.
    Route(
        metrics.METRICS_PATH, {"get": openapi.METRICS}, view=serve_metrics, needs=(MODELER, FIGURES), access=Access.OPEN
    ),
    Route(swagger.SPEC_PATH, {"get": openapi.SPEC}, view=swagger.openapi_json, access=Access.OPEN),
    Route(swagger.DOCS_PATH, {"get": openapi.DOCS_PAGE}, view=swagger.docs_page, access=Access.OPEN),
    Route(swagger.DOCS_PATH + "/", {"get": openapi.DOCS_PAGE}, blueprint=swagger.docs_blueprint, access=Access.OPEN),
    Route(
        swagger.DOCS_PATH + "/<path:path>",
        {"get": openapi.DOCS_ASSET},
        blueprint=swagger.docs_blueprint,
        access=Access.OPEN,
    ),
    # Open Inference Protocol (KServe V2) REST; a version in the path must be the current one.
    v2("/v2", ServerMetadata, openapi.V2_SERVER),
    v2("/v2/health/live", ServerLive, openapi.V2_LIVE, access=Access.OPEN),
    v2("/v2/health/ready", ServerReady, openapi.V2_READY, needs=(READINESS,), access=Access.OPEN),
    *v2_model("", NamedModelMetadata, openapi.V2_MODEL, needs=(MODELS,)),
    *v2_model("/ready", NamedModelReady, openapi.V2_MODEL_READY, needs=(READINESS, MODELS)),
    *v2_model("/infer", NamedModelInfer, openapi.V2_INFER, "post", needs=(MODELS,)),
    # Several models (the default one is also /predict), pinned versions, rollouts.
    Route(MODELS_PATH, {"get": rollout_openapi.MODELS}, Models, needs=(MODELS,)),
    Route(MODEL + "/predict", {"post": rollout_openapi.NAMED_PREDICT}, NamedPredict, needs=(MODELS,)),
    Route(MODEL + VERSION + "/predict", {"post": rollout_openapi.PINNED_PREDICT}, PinnedPredict, needs=(MODELS,)),
    Route(MODEL + "/rollout", {"get": rollout_openapi.ROLLOUT_STATUS}, RolloutStatus, needs=(MODELS, MONITOR)),
    *(
        Route(MODEL + f"/rollout/{action}", {"post": op}, resource, needs=(MODELS,), access=Access.ADMIN)
        for action, op, resource in (
            ("start", rollout_openapi.ROLLOUT_START, RolloutStart),
            ("promote", rollout_openapi.ROLLOUT_PROMOTE, RolloutPromote),
            ("abort", rollout_openapi.ROLLOUT_ABORT, RolloutAbort),
        )
    ),
)


def access_by_rule() -> dict[str, Access]:
    """``{Flask rule: who may call it}`` for every rule of the table (aliases too)."""
    return {rule: route.access for route in ROUTES for rule in route.rules}


def endpoint_labels() -> dict[str, str]:
    """``{alias rule: its route's path}``: an alias is counted as its route in the metrics."""
    return {alias: route.path for route in ROUTES for alias in route.aliases}


def register(
    app: Flask, api: Api, modeler: Modeler, readiness: Readiness, monitor: Monitor, models: ServedModels
) -> None:
    """Bind every route of the table to its resource, view or blueprint."""
    collaborators = {
        MODELER: modeler,
        READINESS: readiness,
        MONITOR: monitor,
        FIGURES: LiveFigures(monitor),
        MODELS: models,
    }
    blueprints: set[Callable[[], Blueprint]] = set()
    for route in ROUTES:
        if route.resource is not None:
            kwargs = {name: collaborators[name] for name in route.needs}
            api.add_resource(route.resource, *route.rules, endpoint=route.endpoint, resource_class_kwargs=kwargs)
        elif route.view is not None:
            methods = [method.upper() for method in route.operations]
            bound = functools.partial(route.view, **{name: collaborators[name] for name in route.needs})
            view = functools.update_wrapper(bound, route.view)  # Flask reads the view's __name__
            for rule in route.rules:
                app.add_url_rule(rule, route.endpoint, view, methods=methods)
        elif route.blueprint not in blueprints:  # one blueprint serves several routes
            blueprints.add(route.blueprint)
            app.register_blueprint(route.blueprint())
