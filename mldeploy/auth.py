"""Bearer-key checks for protected endpoints. Keys come only from the Authorization header
(never the query string, where they would land in access logs) and are compared in constant time."""

from __future__ import annotations

import functools
import hmac
from collections.abc import Callable
from typing import TypeVar

from flask import current_app, request
from werkzeug.exceptions import Forbidden, Unauthorized

F = TypeVar("F", bound=Callable)

BEARER = "Bearer "
REALM = 'Bearer realm="mldeploy"'


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
