"""``serve``: run the service under gunicorn with the package's settings (mldeploy/http/gunicorn_conf.py)."""

from __future__ import annotations

import argparse
import os
import sys

# gunicorn reads a config module by import name, so this works from any folder once installed.
GUNICORN_CONF = "python:mldeploy.http.gunicorn_conf"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` command."""
    parser = subparsers.add_parser("serve", help="serve the API under gunicorn (production server)")
    parser.add_argument("--host", help="interface to bind (default: MLDEPLOY_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default: MLDEPLOY_PORT or 5000)")
    parser.add_argument("--workers", type=int, help="worker processes (default: WEB_CONCURRENCY or 2 x cores)")
    parser.set_defaults(run=run)


def gunicorn_argv(args: argparse.Namespace) -> list[str]:
    """The gunicorn command line for these arguments."""
    argv = [sys.executable, "-m", "gunicorn", "--config", GUNICORN_CONF]
    if args.host or args.port:
        host = args.host or os.environ.get("MLDEPLOY_HOST", "127.0.0.1")
        port = args.port or os.environ.get("MLDEPLOY_PORT", "5000")
        argv += ["--bind", f"{host}:{port}"]
    if args.workers:
        argv += ["--workers", str(args.workers)]
    return argv


def run(args: argparse.Namespace) -> int:
    """Replace this process with gunicorn, so signals (SIGTERM) reach its master directly."""
    argv = gunicorn_argv(args)
    os.execv(argv[0], argv)
    return 1  # not reached
