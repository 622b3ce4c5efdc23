"""The app factory: :func:`create_app` assembles the service from its parts; nothing runs at import."""

from __future__ import annotations

from collections.abc import Mapping

from flask import Flask

from mldeploy import routes
from mldeploy.docs import swagger
from mldeploy.http import auth, errors, jsonio, metrics, rate_limit, request_log
from mldeploy.http.readiness import Readiness
from mldeploy.settings import load_config, make_modeler
from modeler.modeler import Modeler

EXTENSION = "mldeploy"
API_EXTENSION = "mldeploy_api"


def create_app(config: Mapping[str, object] | None = None, modeler: Modeler | None = None) -> Flask:
    """Build the service. ``config`` overrides defaults and ``MLDEPLOY_*`` variables; pass a
    ``modeler`` to serve one you built, else one is made from the config."""
    # No static folder: Flask would otherwise route /static/<filename> to a folder that does not exist.
    app = Flask(__name__, static_folder=None)
    app.json.sort_keys = False  # keep "message" first in error bodies
    load_config(app, config)
    if modeler is None:
        modeler = make_modeler(app.config)
    readiness = Readiness(modeler)
    app.extensions[EXTENSION] = readiness

    # Order matters: before_request hooks run in this order (request id first, then the key
    # check, then the rate limit), after_request hooks in reverse (the log line last).
    # The route table says how each route is counted and who may call it.
    request_log.init_app(app)
    metrics.init_app(app, modeler, routes.endpoint_labels())
    auth.init_app(app, routes.access_by_rule())
    rate_limit.init_app(app)
    errors.init_app(app)
    # catch_all_404s: unknown paths get our JSON 404 rather than Flask's HTML page.
    api = errors.JsonApi(app, catch_all_404s=True)
    # Flask-RESTful writes responses with its own stdlib output_json unless told otherwise.
    api.representation("application/json")(jsonio.output_json)
    app.extensions[API_EXTENSION] = api
    routes.register(app, api, modeler, readiness)
    swagger.init_app(app, readiness, routes.ROUTES)

    if app.config["WARMUP"]:
        readiness.start_warmup()
    return app
