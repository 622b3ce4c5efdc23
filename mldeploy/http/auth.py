"""Bearer-key checks for protected endpoints. Keys come only from the Authorization header
(never the query string, where they would land in access logs) and are compared in constant time."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable, Mapping
from typing import TypeVar

from flask import Flask, current_app, request
from werkzeug.exceptions import Forbidden, Unauthorized

F = TypeVar("F", bound=Callable)

BEARER = "Bearer "
REALM = 'Bearer realm="mldeploy"'

# Routes that stay open when MLDEPLOY_API_KEYS is set: probes, metrics, the API description and
# the pages that carry their own key field. Every other route needs a key (deny by default, so a
# new route is protected without anyone remembering to).
OPEN_PATHS = frozenset({"/", "/health", "/ready", "/metrics", "/openapi.json"})
OPEN_PREFIXES = ("/docs", "/v2/health/")


class BearerRequired(Unauthorized):
    """401 that tells the client which scheme to use."""

    def get_headers(self, environ=None, scope=None) -> list[tuple[str, str]]:
        return [*super().get_headers(environ, scope), ("WWW-Authenticate", REALM)]


def presented_key() -> str | None:
    """The bearer key of the current request, if any."""
    header = request.headers.get("Authorization", "")
    return header[len(BEARER) :].strip() or None if header.startswith(BEARER) else None


def key_matches(presented: str | None, accepted: list[str]) -> bool:
    """Whether ``presented`` equals one of ``accepted``, in time independent of where they differ."""
    if presented is None:
        return False
    given = presented.encode()
    # No short-circuit: every accepted key is compared.
    return any([hmac.compare_digest(given, key.encode()) for key in accepted])


def admin_required(method: F) -> F:
    """Resource method decorator: needs ``Authorization: Bearer <MLDEPLOY_ADMIN_KEY>``."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        admin_key = current_app.config.get("ADMIN_KEY")
        if not admin_key:
            raise Forbidden("Admin endpoints are disabled: set MLDEPLOY_ADMIN_KEY to enable them")
        if not key_matches(presented_key(), [str(admin_key)]):
            raise BearerRequired("Admin endpoint: send Authorization: Bearer <MLDEPLOY_ADMIN_KEY>")
        return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def api_keys(config: Mapping[str, object]) -> list[str]:
    """The accepted API keys: ``MLDEPLOY_API_KEYS`` split on commas (a list is taken as is)."""
    value = config.get("API_KEYS")
    if not value:
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return [key for key in (str(item).strip() for item in items) if key]


def is_open(path: str) -> bool:
    """Whether ``path`` is served without an API key."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def check_api_key() -> None:
    """``before_request``: with API keys set, every non-open route needs one of them (or the
    admin key, so admin calls need one header only)."""
    keys = api_keys(current_app.config)
    # Unknown paths and wrong methods still answer 404/405: they reveal no data. Nor does OPTIONS
    # (Flask answers it with the Allow header), and a browser's CORS preflight never has a key.
    if not keys or request.routing_exception is not None or is_open(request.path) or request.method == "OPTIONS":
        return
    admin_key = current_app.config.get("ADMIN_KEY")
    accepted = [*keys, str(admin_key)] if admin_key else keys
    if not key_matches(presented_key(), accepted):
        raise BearerRequired("Send Authorization: Bearer <key> with one of the MLDEPLOY_API_KEYS")


def init_app(app: Flask) -> None:
    """Check API keys before every request."""
    app.before_request(check_api_key)
