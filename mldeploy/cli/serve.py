"""``serve``: run the service under gunicorn with the package's settings (mldeploy/http/gunicorn_conf.py),
or under Granian (``--server granian``, mldeploy/http/granian_server.py)."""

from __future__ import annotations

import argparse
import os
import sys

from mldeploy import extras
from mldeploy.settings import FIELDS, SERVERS, Settings, argument, env_name, load_settings

# gunicorn reads a config module by import name, so this works from any folder once installed.
GUNICORN_CONF = "python:mldeploy.http.gunicorn_conf"
THREADS_ENV = env_name(FIELDS["THREADS"])


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``serve`` command."""
    parser = subparsers.add_parser("serve", help="serve the API under gunicorn, or Granian (production server)")
    parser.add_argument(
        "--server",
        choices=SERVERS,
        help="the HTTP server (default: MLDEPLOY_SERVER or gunicorn; granian needs requirements-granian.txt)",
    )
    parser.add_argument("--host", help="interface to bind (default: MLDEPLOY_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=argument("PORT"), help="port (default: MLDEPLOY_PORT or 5000)")
    parser.add_argument(
        "--workers", type=argument("WEB_CONCURRENCY"), help="worker processes (default: WEB_CONCURRENCY or 2 x cores)"
    )
    parser.add_argument(
        "--threads",
        type=argument("THREADS"),
        help="threads per worker, gthread's or Granian's (default: MLDEPLOY_THREADS or 2; sync ignores it)",
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
    master directly; or become Granian's main process. A bad setting stops here, before the
    server starts (the CLI prints it)."""
    settings = load_settings()
    if (args.server or settings.server) == "granian":
        extras.require(extras.GRANIAN)  # else a MissingExtra naming the requirements file
        from mldeploy.http import granian_server

        return granian_server.serve(
            settings,
            host=args.host or settings.host,
            port=args.port or settings.port,
            workers=args.workers or settings.web_concurrency,
            threads=args.threads or settings.threads,
        )
    argv = gunicorn_argv(args, settings)
    os.execve(argv[0], argv, gunicorn_environ(args))
    return 1  # not reached
