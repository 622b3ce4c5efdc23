"""Optional rate limiting with flask-limiter: ``MLDEPLOY_RATE_LIMIT`` per client, 429 beyond it.

Clients are told apart by their bearer key when they send one (many users can share one address
behind a proxy), else by their address. The open routes (probes, metrics, docs) are never
limited: an orchestrator must always be able to ask whether the process is alive.
"""

from __future__ import annotations

import hashlib

from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from mldeploy.http import auth


def client_key() -> str:
    """Who is counted: a digest of the bearer key (never the key itself), else the address."""
    key = auth.presented_key()
    if key:
        return "key:" + hashlib.sha256(key.encode()).hexdigest()[:16]
    return "addr:" + get_remote_address()


def exempt() -> bool:
    """Open routes are never limited, nor OPTIONS: a CORS preflight is the browser's own request
    (counting it would halve a page's allowance) and a 429 to it blocks the call it asks for."""
    return request.method == "OPTIONS" or auth.request_access() is auth.Access.OPEN


def init_app(app: Flask) -> Limiter | None:
    """Limit every other route when ``RATE_LIMIT`` is set; ``None`` when it is not."""
    limit = app.config.get("RATE_LIMIT")
    if not limit:
        return None
    limiter = Limiter(
        client_key,
        default_limits=[str(limit)],
        storage_uri=str(app.config["RATE_LIMIT_STORAGE_URI"]),
        # Retry-After (and X-RateLimit-*) headers; a 429 without Retry-After leaves clients guessing.
        headers_enabled=True,
        default_limits_exempt_when=exempt,
    )
    limiter.init_app(app)
    return limiter
