"""``versions``: every saved version, the current one marked."""

from __future__ import annotations

import argparse

from mldeploy.cli.context import configured_modeler
from mldeploy.cli.output import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``versions`` command."""
    parser = subparsers.add_parser("versions", help="list saved model versions as JSON (oldest first)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print a summary of each saved version."""
    print_json(configured_modeler().versions(summary=True))
    return 0
