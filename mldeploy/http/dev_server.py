"""``python app.py``: the simple local server (Flask's, threaded, debug off)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from flask import Flask

from mldeploy.http.request_log import configure_logging

log = logging.getLogger(__name__)


def parse_args(app: Flask, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``--host`` and ``--port``, defaulting to MLDEPLOY_HOST / MLDEPLOY_PORT or 127.0.0.1:5000."""
    parser = argparse.ArgumentParser(description="Serve the mldeploy model API (local development server).")
    parser.add_argument("--host", default=app.config["HOST"], help="interface to bind (default: %(default)s)")
    parser.add_argument("--port", type=int, default=int(app.config["PORT"]), help="port (default: %(default)s)")
    return parser.parse_args(argv)


def main(app: Flask, argv: Sequence[str] | None = None) -> None:
    """Run ``app`` on the configured host and port until interrupted."""
    args = parse_args(app, argv)
    configure_logging(str(app.config["LOG_LEVEL"]))
    # werkzeug's own lines (its banner, its access log) are off: mldeploy logs each request itself.
    log.info(
        "serving on http://%s:%s (development server; use `python -m mldeploy serve` in production)",
        args.host,
        args.port,
    )
    app.run(host=args.host, port=args.port, debug=False, use_reloader=False, threaded=True)
