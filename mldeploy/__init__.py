"""mldeploy: a Flask + Flask-RESTful service around :class:`modeler.modeler.Modeler`.

Importing the package imports nothing heavy: ``mldeploy.client`` must work with only requests and
pandas installed, so Flask and the modeler are imported inside :func:`create_app`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask

    from modeler.modeler import Modeler

EXTENSION = "mldeploy"
API_EXTENSION = "mldeploy_api"


def create_app(config: Mapping[str, object] | None = None, modeler: Modeler | None = None) -> Flask:
    """Build the service. ``config`` overrides defaults and ``MLDEPLOY_*`` variables; pass a
    ``modeler`` to serve one you built, else one is made from the config."""
    from flask import Flask

    from mldeploy import auth, docs, errors, hardening, jsonio, metrics, rate_limit, request_log
    from mldeploy.config import load_config, make_modeler
    from mldeploy.readiness import Readiness
    from mldeploy.routes import register_routes

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
    request_log.init_app(app)
    metrics.init_app(app, modeler)
    auth.init_app(app)
    rate_limit.init_app(app)
    errors.init_app(app)
    hardening.init_app(app)  # issue 15: JSON nesting, CORS, security headers
    # catch_all_404s: unknown paths get our JSON 404 rather than Flask's HTML page.
    api = errors.JsonApi(app, catch_all_404s=True)
    # Flask-RESTful writes responses with its own stdlib output_json unless told otherwise.
    api.representation("application/json")(jsonio.output_json)
    app.extensions[API_EXTENSION] = api
    register_routes(api, modeler, readiness)
    docs.init_app(app, readiness)

    if app.config["WARMUP"]:
        readiness.start_warmup()
    return app
