"""The playground page at ``GET /``: ``web/playground.{html,css,js}`` assembled into one document.

Inlining keeps the page to one route (and one open path when API keys are on), and lets a strict
Content-Security-Policy, pinned to the script's and style's hashes, forbid anything from elsewhere.
"""

from __future__ import annotations

import base64
import functools
import hashlib
from pathlib import Path

from flask import Response

WEB = Path(__file__).resolve().parent / "web"
CSS_SLOT, JS_SLOT = "/*PLAYGROUND_CSS*/", "/*PLAYGROUND_JS*/"


def _hash_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@functools.cache
def _page() -> tuple[bytes, str]:
    html = (WEB / "playground.html").read_text(encoding="utf-8")
    css = (WEB / "playground.css").read_text(encoding="utf-8")
    js = (WEB / "playground.js").read_text(encoding="utf-8")
    body = html.replace(CSS_SLOT, css).replace(JS_SLOT, js)
    policy = "; ".join(
        [
            "default-src 'none'",
            f"script-src {_hash_source(js)}",
            f"style-src {_hash_source(css)}",
            "connect-src 'self'",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
    return body.encode(), policy


def playground_response() -> Response:
    """The page, with a policy that lets it talk to this server only."""
    body, policy = _page()
    response = Response(body, mimetype="text/html")
    response.headers["Content-Security-Policy"] = policy
    return response
