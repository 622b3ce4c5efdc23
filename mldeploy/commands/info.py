"""``info``: the current version's metadata."""

from __future__ import annotations

import argparse

from mldeploy.commands.output import print_json
from mldeploy.config import make_modeler, settings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``info`` command."""
    parser = subparsers.add_parser("info", help="print the current model version's metadata as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load the current version (never trains) and print its metadata."""
    print_json(make_modeler(settings()).load().metadata)
    return 0
