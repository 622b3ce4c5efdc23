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

from flask import Flask, Response
from flask_cors import CORS

from mldeploy.settings import ANY_ORIGIN

# What a page may send, and read back, besides the safelisted headers.
# X-Request-Key keeps a client on one side of a canary (mldeploy.rollout.routing).
ALLOW_HEADERS = ["Authorization", "Content-Type", "X-Request-ID", "X-Request-Key", "Inference-Header-Content-Length"]
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


def _vary_origin(response: Response) -> Response:
    # The answer depends on the Origin header whenever the allow-list is not '*': a cache must not
    # give one origin's answer (or a no-Origin answer) to another.
    response.vary.add("Origin")
    return response


def init_app(app: Flask) -> None:
    """Allow the configured origins; nothing at all when ``CORS_ORIGINS`` is unset."""
    origins = app.config["CORS_ORIGINS"]  # checked by mldeploy.settings.origins
    if not origins:
        return
    wildcard = origins == (ANY_ORIGIN,)
    # Exact, case-insensitive patterns: flask-cors would read "[::1]" in a plain string as a regex.
    exact = [re.compile(re.escape(origin) + r"\Z", re.IGNORECASE) for origin in origins]
    # Every option is given here: flask-cors also reads app.config's CORS_* keys, and CORS_ORIGINS
    # (our MLDEPLOY_CORS_ORIGINS) is one; arguments win over them.
    CORS(
        app,
        origins=ANY_ORIGIN if wildcard else exact,
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
