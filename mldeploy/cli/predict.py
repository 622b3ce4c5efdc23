"""``predict``: score JSON rows given as an argument or on stdin; results as JSON on stdout."""

from __future__ import annotations

import argparse
import json
import sys

from mldeploy.cli.context import configured_modeler
from mldeploy.cli.output import print_json
from mldeploy.contract import CLASS, MODEL_VERSION, PROBABILITIES
from modeler.errors import FieldError, InvalidInput


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` command."""
    parser = subparsers.add_parser(
        "predict",
        help="predict JSON rows (a row object, a list of numbers, or a list of rows)",
        description="Predict rows given as JSON, e.g. "
        '\'{"sepal_length": 5.0, "sepal_width": 3.2, "petal_length": 1.5, "petal_width": 0.3}\'. '
        "Without ROWS, reads the JSON from stdin.",
    )
    parser.add_argument("rows", nargs="?", metavar="ROWS", help="JSON rows (default: read stdin)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Parse, predict, print ``{"Class", "Probabilities", "ModelVersion"}`` or a list of them."""
    text = args.rows if args.rows is not None else sys.stdin.read()
    try:
        rows = json.loads(text)
    except ValueError as exc:
        raise InvalidInput([FieldError(None, None, f"malformed JSON: {exc}")], "Malformed JSON") from exc
    result = configured_modeler().infer(rows)
    answers = [
        {CLASS: label, PROBABILITIES: proba, MODEL_VERSION: result.version}
        for label, proba in zip(result.labels, result.probability_dicts(), strict=True)
    ]
    print_json(answers[0] if result.single else answers)
    return 0
