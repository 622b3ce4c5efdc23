"""``python app.py``: the simple local server (Flask's, threaded, debug off)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence

from mldeploy.cli.exit_codes import EXIT_USAGE
from mldeploy.http.app import create_app
from mldeploy.http.request_log import configure_logging
from mldeploy.monitoring.recording import close_logs
from mldeploy.settings import Settings, SettingsError, argument, load_settings

log = logging.getLogger(__name__)


def parse_args(settings: Settings, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``--host`` and ``--port``, defaulting to MLDEPLOY_HOST / MLDEPLOY_PORT or 127.0.0.1:5000."""
    parser = argparse.ArgumentParser(description="Serve the mldeploy model API (local development server).")
    parser.add_argument("--host", default=settings.host, help="interface to bind (default: %(default)s)")
    parser.add_argument("--port", type=argument("PORT"), default=settings.port, help="port (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Check the settings, then build the app and run it on the configured host and port until
    interrupted. A bad MLDEPLOY_* value is one line on stderr and exit code 2, before any work."""
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_USAGE)
    args = parse_args(settings, argv)  # before the app: --help builds nothing
    configure_logging(settings.log_level)
    app = create_app(settings)
    # werkzeug's own lines (its banner, its access log) are off: mldeploy logs each request itself.
    log.info(
        "serving on http://%s:%s (development server; use `python -m mldeploy serve` in production)",
        args.host,
        args.port,
    )
    # SIGTERM (docker stop, a test's stop) ends the server as Ctrl-C does, through Python's exit,
    # so the prediction log writes what it still queues (by default SIGTERM would end it at once).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        app.run(host=args.host, port=args.port, debug=False, use_reloader=False, threaded=True)
    finally:
        close_logs()


def _exit_on_sigterm(signum: int, frame: object) -> None:
    sys.exit(0)
