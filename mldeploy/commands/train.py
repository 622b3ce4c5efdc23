"""``train``: fit a new version on the configured data and make it current."""

from __future__ import annotations

import argparse

from mldeploy.commands.output import print_json
from mldeploy.config import make_modeler, settings


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` command."""
    parser = subparsers.add_parser("train", help="train a new model version and make it current")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train, print the new version's metadata."""
    modeler = make_modeler(settings()).fit()
    print_json(modeler.metadata)
    return 0
