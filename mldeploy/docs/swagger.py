"""``/openapi.json`` and ``/docs``: the API description and Swagger UI, served offline.

flask-swagger-ui bundles Swagger UI's files in its wheel and serves them from this host, so the
page loads with no network; its default online validator badge is switched off for the same
reason.
"""

from __future__ import annotations

import functools

from flask import Flask, Response, jsonify
from flask_swagger_ui import get_swaggerui_blueprint

from mldeploy.docs.openapi import build_spec
from mldeploy.http.readiness import Readiness

SPEC_PATH = "/openapi.json"
DOCS_PATH = "/docs"
# Swagger UI options: no call to the online validator, no link leaving the host.
SWAGGER_CONFIG = {
    "app_name": "mldeploy API",
    "validatorUrl": None,
    "deepLinking": True,
    # Relative, where flask-swagger-ui would write an absolute URL built from the request.
    "oauth2RedirectUrl": f"{DOCS_PATH}/oauth2-redirect.html",
}


def init_app(app: Flask, readiness: Readiness) -> None:
    """Serve the spec and the Swagger UI page (``/docs`` and its static files under ``/docs/``)."""

    @functools.lru_cache(maxsize=1)
    def spec_json(features: tuple[str, ...] | None, version: str | None) -> bytes:
        # The document depends on the config, fixed once the app is built, and on the served
        # model: built and serialised once per model version, not on every request.
        return jsonify(build_spec(app.config, features, version)).get_data()

    def openapi_json() -> Response:
        modeler = readiness.modeler
        # Never load or train for the docs: the schemas name the features and the version once
        # they are known.
        model = modeler.ensure_ready() if modeler.is_ready else None
        body = spec_json(model.features, model.version) if model else spec_json(None, None)
        return app.response_class(body, mimetype=app.json.mimetype)

    app.add_url_rule(SPEC_PATH, "openapi", openapi_json, methods=["GET"])
    blueprint = get_swaggerui_blueprint(DOCS_PATH, SPEC_PATH, config=SWAGGER_CONFIG, blueprint_name="docs")
    app.register_blueprint(blueprint)
    # The blueprint serves the page at /docs/; /docs answers the same page rather than a redirect.
    app.add_url_rule(DOCS_PATH, "docs_page", app.view_functions["docs.show"], methods=["GET"])
