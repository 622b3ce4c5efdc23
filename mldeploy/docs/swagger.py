"""``/openapi.json`` and ``/docs``: the API description and Swagger UI, served offline.

flask-swagger-ui bundles Swagger UI's files in its wheel and serves them from this host, so the
page loads with no network; its default online validator badge is switched off for the same
reason. The route table (``mldeploy.routes``) binds these views and the blueprint to their paths.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from flask import Blueprint, Flask, Response, current_app, jsonify
from flask_swagger_ui import get_swaggerui_blueprint

from mldeploy.api.v2.resources import MODELS_EXTENSION
from mldeploy.docs.openapi import DocumentedModel, build_spec
from mldeploy.http.readiness import Readiness

if TYPE_CHECKING:
    from mldeploy.routes import Route

SPEC_PATH = "/openapi.json"
DOCS_PATH = "/docs"
BLUEPRINT_NAME = "docs"
# app.extensions key of the function that returns the document's bytes.
EXTENSION = "mldeploy_openapi"
# Swagger UI options: no call to the online validator, no link leaving the host.
SWAGGER_CONFIG = {
    "app_name": "mldeploy API",
    "validatorUrl": None,
    "deepLinking": True,
    # Relative, where flask-swagger-ui would write an absolute URL built from the request.
    "oauth2RedirectUrl": f"{DOCS_PATH}/oauth2-redirect.html",
}


def docs_blueprint() -> Blueprint:
    """flask-swagger-ui's blueprint: the page at ``/docs/``, its files at ``/docs/<path:path>``."""
    return get_swaggerui_blueprint(DOCS_PATH, SPEC_PATH, config=SWAGGER_CONFIG, blueprint_name=BLUEPRINT_NAME)


def docs_page() -> Response:
    """``GET /docs``: the page the blueprint serves at ``/docs/``, rather than a redirect to it."""
    return current_app.view_functions[f"{BLUEPRINT_NAME}.show"]()


def openapi_json() -> Response:
    """``GET /openapi.json``: the document, built once per model version."""
    body: Callable[[], bytes] = current_app.extensions[EXTENSION]
    return current_app.response_class(body(), mimetype=current_app.json.mimetype)


def init_app(app: Flask, readiness: Readiness, routes: Iterable[Route]) -> None:
    """Describe ``routes`` at ``/openapi.json`` (the table registers the view itself)."""
    routes = tuple(routes)

    @functools.lru_cache(maxsize=1)
    def spec_json(model: DocumentedModel | None, names: tuple[str, ...]) -> bytes:
        # The document depends on the config, fixed once the app is built, and on the served
        # models: built and serialised once per model version (and set of models), not on every request.
        return jsonify(build_spec(app.config, routes, model, names)).get_data()

    described: dict[str, DocumentedModel] = {}  # one entry: the version served

    def body() -> bytes:
        modeler = readiness.modeler
        models = app.extensions.get(MODELS_EXTENSION)  # the server's models, when it has several
        names = tuple(models.names()) if models is not None else ()
        # Never load or train for the docs: the schemas name the fields and the version once
        # they are known.
        model = modeler.ensure_ready() if modeler.is_ready else None
        if model is None:
            return spec_json(None, names)
        if model.version not in described:
            described.clear()
            described[model.version] = DocumentedModel.of(model)
        return spec_json(described[model.version], names)

    app.extensions[EXTENSION] = body
