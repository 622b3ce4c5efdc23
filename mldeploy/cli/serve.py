"""``serve``: run the service under gunicorn with the package's settings (mldeploy/http/gunicorn_conf.py)."""

from __future__ import annotations

import argparse
import os
import sys

from mldeploy.settings import FIELDS, Settings, argument, env_name, load_settings

# gunicorn reads a config module by import name, so this works from any folder once installed.
GUNICORN_CONF = "python:mldeploy.http.gunicorn_conf"
THREADS_ENV = env_name(FIELDS["THREADS"])


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` command."""
    parser = subparsers.add_parser("serve", help="serve the API under gunicorn (production server)")
    parser.add_argument("--host", help="interface to bind (default: MLDEPLOY_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=argument("PORT"), help="port (default: MLDEPLOY_PORT or 5000)")
    parser.add_argument(
        "--workers", type=argument("WEB_CONCURRENCY"), help="worker processes (default: WEB_CONCURRENCY or 2 x cores)"
    )
    parser.add_argument(
        "--threads",
        type=argument("THREADS"),
        help="threads per gthread worker (default: MLDEPLOY_THREADS or 2; MLDEPLOY_WORKER_CLASS=sync ignores it)",
    )
    parser.set_defaults(run=run)


def gunicorn_argv(args: argparse.Namespace, settings: Settings | None = None) -> list[str]:
    """The gunicorn command line for these arguments; what they leave out, gunicorn_conf.py
    takes from the same settings (``settings``, else the environment's)."""
    settings = settings or load_settings()
    argv = [sys.executable, "-m", "gunicorn", "--config", GUNICORN_CONF]
    if args.host or args.port:
        argv += ["--bind", f"{args.host or settings.host}:{args.port or settings.port}"]
    if args.workers:
        argv += ["--workers", str(args.workers)]
    return argv


def gunicorn_environ(args: argparse.Namespace, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The environment gunicorn runs in: ``--threads`` goes to gunicorn_conf.py as
    MLDEPLOY_THREADS, not as gunicorn's own ``--threads``, which would turn a sync worker into
    gunicorn's plain gthread worker behind the config's back."""
    env = dict(os.environ if environ is None else environ)
    if args.threads:
        env[THREADS_ENV] = str(args.threads)
    return env


def run(args: argparse.Namespace) -> int:
    """Check the settings, then replace this process with gunicorn, so signals (SIGTERM) reach its
    master directly. A bad setting stops here, before gunicorn starts (the CLI prints it)."""
    argv = gunicorn_argv(args, load_settings())
    os.execve(argv[0], argv, gunicorn_environ(args))
    return 1  # not reached
