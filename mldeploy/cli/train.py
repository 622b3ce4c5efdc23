"""``train``: fit a new version on the configured data (else the current version's recipe) and
make it current."""

from __future__ import annotations

import argparse
import json

from mldeploy.cli.model_name import add_name_argument, named_modeler
from mldeploy.cli.output import print_json


def param(text: str) -> tuple[str, object]:
    """``NAME=VALUE`` with VALUE read as JSON when it parses (3, 0.5, null), else as a string."""
    name, sep, raw = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    try:
        return name, json.loads(raw)
    except ValueError:
        return name, raw


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``train`` command."""
    parser = subparsers.add_parser("train", help="train a new model version and make it current")
    parser.add_argument(
        "--param",
        type=param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter of the estimator for this version, e.g. --param max_depth=3 (repeatable)",
    )
    parser.add_argument(
        "--estimator",
        metavar="NAME",
        help="a scikit-learn classifier or regressor of sklearn.tree, ensemble, linear_model, neighbors or svm "
        "by class name, e.g. RandomForestClassifier (default: the current version's, else DecisionTreeClassifier)",
    )
    parser.add_argument(
        "--allow-schema-change",
        action="store_true",
        help="train even when the data's input fields differ from the current version's "
        "(clients must then send the new fields); refused otherwise",
    )
    add_name_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Train, print the new version's metadata."""
    modeler = named_modeler(args).fit(
        dict(args.param), allow_schema_change=args.allow_schema_change, estimator=args.estimator
    )
    print_json(modeler.metadata)
    return 0
