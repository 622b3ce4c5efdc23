"""Headers every answer carries, and the Content-Security-Policy of ``/docs``.

- ``X-Content-Type-Options: nosniff`` on every answer (errors included), so a browser never reads
  a JSON answer, or an asset, as another type than the one it is sent as.
- On ``/docs`` and its files, a policy as strict as the playground's: everything from this host
  only, the one inline script of flask-swagger-ui's page and the ``<style>`` elements Swagger UI's
  scripts create (its logo is an SVG with one) allowed by their hashes. The hashes come from the
  page and from the scripts it loads, so a new flask-swagger-ui keeps a working policy.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from pathlib import Path

import flask_swagger_ui
from flask import Response

from mldeploy.docs.swagger import DOCS_PATH
from mldeploy.http.request_context import RequestFacts

NOSNIFF = ("X-Content-Type-Options", "nosniff")
CSP = "Content-Security-Policy"
# An inline script: a <script> element without a src attribute, and its exact text.
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc\s*=)[^>]*>(.*?)</script>", re.DOTALL | re.IGNORECASE)
# The page's own scripts, under /docs/, and the files flask-swagger-ui serves them from.
SCRIPT_SRC = re.compile(r"<script[^>]*\bsrc=\"" + re.escape(DOCS_PATH) + r"/([\w.-]+\.js)\"", re.IGNORECASE)
SWAGGER_DIST = Path(flask_swagger_ui.__file__).resolve().parent / "dist"
# A <style> element a React script renders: createElement("style",null,"<css>").
SCRIPT_STYLE = re.compile(r'createElement\("style",null,("(?:[^"\\\n]|\\.)*")\)')


def _hash_source(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode() + "'"


@functools.cache
def script_styles(name: str) -> tuple[str, ...]:
    """The text of each ``<style>`` element Swagger UI's script ``name`` creates (read once)."""
    path = SWAGGER_DIST / name
    if not path.is_file():
        return ()
    styles = []
    for literal in SCRIPT_STYLE.findall(path.read_text(encoding="utf-8")):
        try:
            styles.append(json.loads(literal))  # a JS string literal, in JSON's subset of escapes
        except ValueError:
            continue  # an escape JSON lacks: that style stays blocked, and the browser test says so
    return tuple(styles)


@functools.lru_cache(maxsize=8)  # one page (and its trailing-slash twin): the same body each time
def docs_policy(html: str = "") -> str:
    """The policy for a /docs answer whose body is ``html`` (empty for assets and files)."""
    scripts = " ".join(["'self'", *(_hash_source(s) for s in INLINE_SCRIPT.findall(html))])
    created = [style for name in SCRIPT_SRC.findall(html) for style in script_styles(name)]
    styles = " ".join(["'self'", *dict.fromkeys(_hash_source(s) for s in created)])
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {scripts}",
            f"style-src {styles}",
            # Swagger UI's icons are data: URIs; the favicons come from this host.
            "img-src 'self' data:",
            # The spec, and "Try it out" calls, go to this server only.
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def is_docs(path: str) -> bool:
    """Whether ``path`` is the Swagger UI page or one of its files."""
    return path == DOCS_PATH or path.startswith(DOCS_PATH + "/")


def add_headers(response: Response, facts: RequestFacts) -> None:
    """A reader of ``request_context.finish`` (so of every answer): nosniff everywhere, the
    policy on /docs."""
    # add, not setdefault: only this reader sets it, and setdefault searches the list first (2 µs).
    response.headers.add(*NOSNIFF)
    if is_docs(facts.request.path) and CSP not in response.headers:
        # Files are sent straight from disk (direct passthrough) and hold no inline script.
        readable = response.mimetype == "text/html" and not response.direct_passthrough
        response.headers[CSP] = docs_policy(response.get_data(as_text=True) if readable else "")
