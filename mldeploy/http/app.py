"""The app factory: :func:`create_app` assembles the service from its parts; nothing runs at import."""

from __future__ import annotations

import types
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask

from mldeploy import routes
from mldeploy.api.v2.resources import MODELS_EXTENSION
from mldeploy.docs import swagger
from mldeploy.http import (
    auth,
    cors,
    errors,
    json_limits,
    jsonio,
    metrics,
    rate_limit,
    request_context,
    request_log,
    security_headers,
)
from mldeploy.http.readiness import Readiness
from mldeploy.monitoring import recording
from mldeploy.monitoring.monitor import Monitor
from mldeploy.rollout.routing import ServedModels
from mldeploy.settings import FIELDS, Settings, SettingsError, load_settings, make_modeler
from modeler.modeler import Modeler

EXTENSION = "mldeploy"
API_EXTENSION = "mldeploy_api"
SETTINGS_EXTENSION = "mldeploy_settings"
# How many functions ServiceFlask remembers as synchronous: every hook and view, with room to
# spare; a function made per request (after_this_request) is asked about afresh once it is full.
SYNC_CACHE_SIZE = 512


class ServiceFlask(Flask):
    """Flask, with its check of a hook or view for a coroutine function made once per function.

    Flask asks ``inspect`` whether each before- and after-request hook and the view is an
    ``async def`` on every call of it (four calls a request here, about 1 µs each); the answer
    for a given function never changes. Flask documents :meth:`ensure_sync` as the method to
    override for how functions are run.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._synchronous: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """``func`` as Flask would run it (an ``async def`` wrapped), remembered for plain functions."""
        if type(func) is not types.FunctionType:  # a bound method, a partial, any callable: as Flask does
            return super().ensure_sync(func)
        found = self._synchronous.get(func)
        if found is None:
            found = super().ensure_sync(func)
            if len(self._synchronous) < SYNC_CACHE_SIZE:
                self._synchronous[func] = found
        return found


def create_app(config: Mapping[str, object] | Settings | None = None, modeler: Modeler | None = None) -> Flask:
    """Build the service. ``config`` is either parsed :class:`Settings`, used as they are, or a
    mapping of config keys that overrides the defaults and ``MLDEPLOY_*`` variables (and may set
    Flask's own keys, e.g. ``TESTING``); pass a ``modeler`` to serve one you built, else one is
    made from the settings. A bad setting raises :class:`SettingsError` naming it."""
    # No static folder: Flask would otherwise route /static/<filename> to a folder that does not exist.
    app = ServiceFlask(__name__, static_folder=None)
    app.json.sort_keys = False  # keep "message" first in error bodies
    settings = configure(app, config)
    if modeler is None:
        modeler = make_modeler(settings)
    readiness = Readiness(modeler)
    app.extensions[EXTENSION] = readiness

    # Order matters: before_request hooks run in this order (request id first, then the key
    # check, then the rate limit). After the answer, request_context's one hook (registered
    # first, so run after every other after_request) reads the clock once and hands the answer
    # to each reader in turn: the security headers, the prediction log (unless
    # MLDEPLOY_LOG_PREDICTIONS=0), the metrics, then the log line. The route table says how each
    # route is counted and who may call it.
    readers = [
        security_headers.add_headers,  # nosniff on every answer, a CSP on /docs
        recording.init_app(app, settings, modeler),
        metrics.reader(modeler, routes.endpoint_labels()),
        request_log.log_request,
    ]
    request_context.init_app(app, [read for read in readers if read is not None])
    metrics.init_app(app, modeler)
    auth.init_app(app, routes.access_by_rule())
    rate_limit.init_app(app)
    errors.init_app(app)
    json_limits.init_app(app)  # request.get_json() nests no deeper than the body reader allows
    cors.init_app(app)  # only with MLDEPLOY_CORS_ORIGINS
    # catch_all_404s: unknown paths get our JSON 404 rather than Flask's HTML page.
    api = errors.JsonApi(app, catch_all_404s=True)
    # Flask-RESTful writes responses with its own stdlib output_json unless told otherwise.
    api.representation("application/json")(jsonio.output_json)
    app.extensions[API_EXTENSION] = api
    models = ServedModels(settings, modeler)  # the default model and the others, by name
    app.extensions[MODELS_EXTENSION] = models
    routes.register(app, api, modeler, readiness, Monitor.of(app, settings, modeler), models)
    swagger.init_app(app, readiness, routes.ROUTES)

    if settings.warmup:
        readiness.start_warmup()
    return app


def configure(app: Flask, config: Mapping[str, object] | Settings | None) -> Settings:
    """Parse the settings once, keep them typed in ``app.extensions`` and fill ``app.config``
    with the same typed values (for code that reads ``app.config[...]``), then Flask's own keys."""
    if isinstance(config, Settings):
        settings, flask_keys = config, {}
    else:
        overrides = dict(config or {})
        unknown = sorted(k for k in overrides if k not in FIELDS and k not in app.config)
        if unknown:  # a misspelt key would otherwise be ignored, and the test pass for a wrong reason
            raise SettingsError(f"config: unknown key(s) {', '.join(unknown)}: neither a setting nor Flask's")
        settings = load_settings(overrides)
        flask_keys = {k: v for k, v in overrides.items() if k not in FIELDS}
    app.extensions[SETTINGS_EXTENSION] = settings
    app.config.update(settings.as_config(), **flask_keys)
    return settings


def settings_of(app: Flask) -> Settings:
    """The typed settings ``app`` was built with."""
    return app.extensions[SETTINGS_EXTENSION]
