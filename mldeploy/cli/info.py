"""``info``: the current version's metadata."""

from __future__ import annotations

import argparse

from mldeploy.cli.context import configured_modeler
from mldeploy.cli.output import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``info`` command."""
    parser = subparsers.add_parser("info", help="print the current model version's metadata as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load the current version (never trains) and print its metadata."""
    print_json(configured_modeler().load().metadata)
    return 0
