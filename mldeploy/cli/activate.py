"""``activate``: make a saved version current (a rollback); running servers follow within
MLDEPLOY_POLL_INTERVAL seconds, without a restart."""

from __future__ import annotations

import argparse

from mldeploy.cli.model_name import add_name_argument, named_modeler
from mldeploy.cli.output import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``activate`` command."""
    parser = subparsers.add_parser(
        "activate",
        help="make a saved model version current (roll back or forward)",
        description="Switch the current-version pointer to VERSION after verifying that it loads. "
        "Servers on the same model directory follow without a restart.",
    )
    parser.add_argument("version", metavar="VERSION", help="a version id, as `versions` lists them")
    add_name_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Activate, print the version's summary."""
    modeler = named_modeler(args)
    metadata = modeler.activate(args.version)
    print_json(next((v for v in modeler.versions(summary=True) if v["version"] == metadata["version"]), metadata))
    return 0
