"""The command line: ``python -m mldeploy <command>`` (or ``mldeploy <command>``). Each command
lives in ``mldeploy/cli/<name>.py`` with ``register(subparsers)``; this module only assembles them
and turns domain errors into messages on stderr and documented exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from mldeploy.cli import activate, export, import_, info, log, predict, rollout, score, serve, train, versions
from mldeploy.cli.exit_codes import EXIT_ERROR, EXIT_INVALID_INPUT, EXIT_NOT_FOUND, EXIT_NOT_READY, EXIT_USAGE
from mldeploy.extras import MissingExtra
from mldeploy.settings import SettingsError, load_settings
from modeler.errors import InvalidInput, ModelerError, ModelNotReady, VersionNotFound

COMMANDS = (serve, train, import_, info, versions, activate, export, predict, score, log, rollout)


def build_parser() -> argparse.ArgumentParser:
    """The parser with every command registered."""
    parser = argparse.ArgumentParser(
        # The usage line shows the command as it was run: the installed script, or the module.
        prog="mldeploy" if Path(sys.argv[0]).name == "mldeploy" else "python -m mldeploy",
        description="Serve, train and query mldeploy models. Settings come from MLDEPLOY_* variables.",
        epilog="exit codes: 0 ok, 1 error, 2 usage, 3 invalid input (or rows that failed to score), "
        "4 model not ready, 5 version not found",
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code."""
    args = build_parser().parse_args(argv)
    try:
        # Every command refuses a bad MLDEPLOY_* value before doing anything, whether or not it
        # reads that setting itself; those that build a model parse them again (a pure, cheap step).
        load_settings()
        return args.run(args)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID_INPUT
    except ModelNotReady as exc:
        print(f"error: model not ready: {_message(exc)}", file=sys.stderr)
        return EXIT_NOT_READY
    except VersionNotFound as exc:
        print(f"error: {_message(exc)}", file=sys.stderr)
        return EXIT_NOT_FOUND
    except (ModelerError, OSError, MissingExtra) as exc:
        print(f"error: {_message(exc)}", file=sys.stderr)
        return EXIT_ERROR


def _message(exc: BaseException) -> str:
    # On the command line the path a domain error concerns is the user's own: show it.
    return exc.detail() if isinstance(exc, ModelerError) else str(exc)
