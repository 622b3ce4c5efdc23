"""``versions``: every saved version, the current one marked."""

from __future__ import annotations

import argparse

from mldeploy.commands.output import print_json
from mldeploy.config import make_modeler, settings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``versions`` command."""
    parser = subparsers.add_parser("versions", help="list saved model versions as JSON (oldest first)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print a summary of each saved version."""
    print_json(make_modeler(settings()).versions(summary=True))
    return 0
