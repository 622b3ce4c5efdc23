"""``info``: the current version's metadata."""

from __future__ import annotations

import argparse

from mldeploy.cli.model_name import add_name_argument, named_modeler
from mldeploy.cli.output import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``info`` command."""
    parser = subparsers.add_parser("info", help="print the current model version's metadata as JSON")
    add_name_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load the current version (never trains) and print its metadata."""
    print_json(named_modeler(args).load().metadata)
    return 0
