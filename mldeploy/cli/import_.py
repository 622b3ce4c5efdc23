"""``import``: adopt a user's fitted scikit-learn model file as a new version and make it current.

The file is read by the restricted loader (``.joblib``, ``.pkl``, ``.pickle``) or skops' safe
loader (``.skops``): only scikit-learn, numpy, scipy and pandas types, plus those named with
``--trust``; anything else is refused before it runs, naming the type.
"""

from __future__ import annotations

import argparse

from mldeploy.cli.model_name import add_name_argument, named_modeler
from mldeploy.cli.output import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``import`` command."""
    parser = subparsers.add_parser("import", help="import a fitted scikit-learn model file as the current version")
    parser.add_argument("file", help="the model file: .joblib, .pkl, .pickle (joblib or pickle) or .skops")
    parser.add_argument(
        "--sample",
        metavar="CSV",
        help="rows of the model's input (with a header): the columns' types, categories and ranges come from it",
    )
    parser.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="NAME",
        help="a further type the file may hold, as module.Name (e.g. mypkg.MyTransformer; repeatable)",
    )
    add_name_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Import (into model ``--name``, which it creates when new), print the new version's metadata."""
    modeler = named_modeler(args).import_model(args.file, sample=args.sample, trust=tuple(args.trust))
    print_json(modeler.metadata)
    return 0
