"""Bearer-key checks, driven by each route's :class:`Access` in the route table (``mldeploy.routes``).

Keys come only from the Authorization header (never the query string, where they would land in
access logs) and are compared in constant time.
"""

from __future__ import annotations

import enum
import functools
import hmac
from collections.abc import Callable, Mapping
from typing import TypeVar

from flask import Flask, current_app, request
from werkzeug.exceptions import Forbidden, Unauthorized
from werkzeug.routing import Rule

F = TypeVar("F", bound=Callable)

BEARER = "Bearer "
REALM = 'Bearer realm="mldeploy"'
# app.extensions key of the AccessPolicy: the route table's say on who may call each route.
EXTENSION = "mldeploy_access"
ADMIN_DISABLED = "Admin endpoints are disabled: set MLDEPLOY_ADMIN_KEY to enable them"


class Access(enum.StrEnum):
    """Who may call a route."""

    OPEN = "open"  # anyone, even with MLDEPLOY_API_KEYS set: probes, metrics, the docs
    API = "api"  # one of MLDEPLOY_API_KEYS when set (or the admin key); the default
    ADMIN = "admin"  # MLDEPLOY_ADMIN_KEY only


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


def check_admin_key() -> None:
    """401 unless the request carries ``Authorization: Bearer <MLDEPLOY_ADMIN_KEY>``; 403 when
    it carries a key while no admin key is set (no key could ever pass)."""
    admin_key = current_app.config.get("ADMIN_KEY")
    presented = presented_key()
    if not admin_key:
        # No credentials at all is a 401 whatever the configuration; a key that cannot pass is 403.
        if presented is None:
            raise BearerRequired(f"{ADMIN_DISABLED}, then send Authorization: Bearer <MLDEPLOY_ADMIN_KEY>")
        raise Forbidden(ADMIN_DISABLED)
    if not key_matches(presented, [str(admin_key)]):
        raise BearerRequired("Admin endpoint: send Authorization: Bearer <MLDEPLOY_ADMIN_KEY>")


def admin_required(method: F) -> F:
    """Resource method decorator for a route outside the route table: the admin key's check."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        check_admin_key()
        return method(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def api_keys(config: Mapping[str, object]) -> list[str]:
    """The accepted API keys: ``MLDEPLOY_API_KEYS`` split on commas (a list is taken as is)."""
    value = config.get("API_KEYS")
    if not value:
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    return [key for key in (str(item).strip() for item in items) if key]


class AccessPolicy:
    """The route table's access per rule and the configured keys, settled when the app is built
    (settings are read once, at start): a request's check is then a dict look-up or two."""

    def __init__(self, access: Mapping[str, Access], config: Mapping[str, object]) -> None:
        self.access = dict(access)
        keys = api_keys(config)
        admin_key = config.get("ADMIN_KEY")
        # With API keys set, an API route takes one of them or the admin key.
        self.accepted = [*keys, str(admin_key)] if keys and admin_key else keys

    def of(self, rule: Rule | None) -> Access:
        """Who may call ``rule``. A rule outside the table needs a key (deny by default, so a
        route added by hand is protected without anyone remembering to)."""
        if rule is None:
            return Access.API
        return self.access.get(rule.rule, Access.API)


def request_access() -> Access:
    """Who may call the current request's route (see :meth:`AccessPolicy.of`)."""
    return current_app.extensions[EXTENSION].of(request.url_rule)


def check_access(policy: AccessPolicy) -> None:
    """``before_request``: the key check the route's access asks for. With API keys set, an API
    route takes one of them or the admin key, so admin calls need one header only."""
    req = request._get_current_object()  # one context look-up for the attributes below
    # Unknown paths and wrong methods still answer 404/405: they reveal no data. Nor does OPTIONS
    # (Flask answers it with the Allow header), and a browser's CORS preflight never has a key.
    if req.routing_exception is not None or req.method == "OPTIONS":
        return
    access = policy.of(req.url_rule)
    if access is Access.OPEN:
        return
    if access is Access.ADMIN:
        check_admin_key()
        return
    if policy.accepted and not key_matches(presented_key(), policy.accepted):
        raise BearerRequired("Send Authorization: Bearer <key> with one of the MLDEPLOY_API_KEYS")


def init_app(app: Flask, access: Mapping[str, Access]) -> None:
    """Check keys before every request, by ``access``: ``{Flask rule: Access}`` from the route table."""
    policy = app.extensions[EXTENSION] = AccessPolicy(access, app.config)
    app.before_request(lambda: check_access(policy))
