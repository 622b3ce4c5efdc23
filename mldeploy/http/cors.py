"""Cross-origin calls from browsers (CORS), off unless ``MLDEPLOY_CORS_ORIGINS`` lists origins.

A web app served from another origin may call the API only when its origin is on the list
(``https://app.example.com,http://localhost:3000``), or with ``*`` for any origin. flask-cors
answers the browser's preflight (``OPTIONS`` with ``Access-Control-Request-Method``) and adds the
headers to every answer, errors included, so the page can read a 400's problems too.

Credentials (cookies, HTTP authentication) are never allowed, with a list or with ``*``: the API
uses none, and a bearer key set by the page in ``Authorization`` is a header, not a credential
(the preflight allows that header). Preflights need no key and are not rate limited (see
``mldeploy.http.auth`` and ``mldeploy.http.rate_limit``): a browser sends them without the page's headers.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from flask import Flask, Response
from flask_cors import CORS

ANY = "*"
# scheme://host[:port], nothing after: what a browser sends in its Origin header. "null" (sandboxed
# frames, file: pages) is refused on purpose: any page can send it.
ORIGIN = re.compile(r"https?://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?")
# What a page may send, and read back, besides the safelisted headers.
ALLOW_HEADERS = ["Authorization", "Content-Type", "X-Request-ID", "Inference-Header-Content-Length"]
EXPOSE_HEADERS = [
    "X-Request-ID",
    "Retry-After",
    "WWW-Authenticate",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Inference-Header-Content-Length",
]
METHODS = ["GET", "POST"]
# Seconds a browser may reuse a preflight's answer (Chromium caps it at 7,200).
MAX_AGE = 600


def allowed_origins(config: Mapping[str, object]) -> list[str]:
    """``MLDEPLOY_CORS_ORIGINS`` split on commas (a list is taken as is); ``["*"]`` for any origin,
    ``[]`` when unset. Raises ValueError naming the setting for anything else than origins."""
    value = config.get("CORS_ORIGINS")
    if not value:
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    origins = [origin for origin in (str(item).strip().rstrip("/") for item in items) if origin]
    if ANY in origins:
        if len(origins) > 1:
            raise ValueError("bad MLDEPLOY_CORS_ORIGINS: '*' allows every origin, so list nothing else with it")
        return origins
    bad = [origin for origin in origins if not ORIGIN.fullmatch(origin)]
    if bad:
        raise ValueError(
            f"bad MLDEPLOY_CORS_ORIGINS: {', '.join(map(repr, bad))} is not an origin: "
            "write scheme://host[:port], e.g. https://app.example.com,http://localhost:3000"
        )
    return origins


def _vary_origin(response: Response) -> Response:
    # The answer depends on the Origin header whenever the allow-list is not '*': a cache must not
    # give one origin's answer (or a no-Origin answer) to another.
    response.vary.add("Origin")
    return response


def init_app(app: Flask) -> None:
    """Allow the configured origins; nothing at all when ``CORS_ORIGINS`` is unset."""
    origins = allowed_origins(app.config)
    if not origins:
        return
    wildcard = origins == [ANY]
    # Exact, case-insensitive patterns: flask-cors would read "[::1]" in a plain string as a regex.
    exact = [re.compile(re.escape(origin) + r"\Z", re.IGNORECASE) for origin in origins]
    # Every option is given here: flask-cors also reads app.config's CORS_* keys, and CORS_ORIGINS
    # (our MLDEPLOY_CORS_ORIGINS) is one; arguments win over them.
    CORS(
        app,
        origins=ANY if wildcard else exact,
        methods=METHODS,
        allow_headers=ALLOW_HEADERS,
        expose_headers=EXPOSE_HEADERS,
        supports_credentials=False,
        max_age=MAX_AGE,
        send_wildcard=wildcard,
        # flask-cors adds Vary only for two origins or more; _vary_origin does it for one too.
        vary_header=False,
    )
    if not wildcard:
        app.after_request(_vary_origin)
