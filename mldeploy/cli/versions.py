"""``versions``: every saved version, the current one marked."""

from __future__ import annotations

import argparse

from mldeploy.cli.model_name import add_name_argument, named_modeler
from mldeploy.cli.output import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``versions`` command."""
    parser = subparsers.add_parser("versions", help="list saved model versions as JSON (oldest first)")
    add_name_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print a summary of each saved version."""
    print_json(named_modeler(args).versions(summary=True))
    return 0
