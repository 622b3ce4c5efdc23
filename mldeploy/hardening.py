"""The app factory's one hook for issue 15's protections, so that ``create_app`` calls one line:
JSON nesting bounded for ``request.get_json()`` too (:mod:`mldeploy.json_limits`), cross-origin
calls when allowed (:mod:`mldeploy.cors`) and the headers every answer carries
(:mod:`mldeploy.security_headers`)."""

from __future__ import annotations

from flask import Flask

from mldeploy import cors, json_limits, security_headers


def init_app(app: Flask) -> None:
    """Install the three; a bad ``MLDEPLOY_CORS_ORIGINS`` raises ValueError naming it."""
    json_limits.init_app(app)
    cors.init_app(app)
    security_headers.init_app(app)
