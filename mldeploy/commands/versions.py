"""``versions``: every saved version, the current one marked."""

from __future__ import annotations

import argparse

from mldeploy.commands.output import print_json
from mldeploy.config import make_modeler, settings

SUMMARY = ("version", "trained_at", "current", "holdout", "params")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``versions`` command."""
    parser = subparsers.add_parser("versions", help="list saved model versions as JSON (oldest first)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print a summary of each saved version."""
    versions = make_modeler(settings()).versions()
    print_json([{key: v.get(key) for key in SUMMARY} for v in versions])
    return 0
