"""``predict``: score JSON rows given as an argument or on stdin; the answer as JSON on stdout.

The body shapes and the answer are HTTP ``/predict``'s (:func:`mldeploy.api.payload.rows_from_body`
and :func:`mldeploy.api.answers.predict_answer`), so the same request gets the same answer here,
``Warnings`` and ``--explain`` included.
"""

from __future__ import annotations

import argparse
import sys

from mldeploy.cli.model_name import add_name_argument, named_modeler
from mldeploy.cli.output import print_json


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``predict`` command."""
    parser = subparsers.add_parser(
        "predict",
        help="predict JSON rows, in any body shape POST /predict takes",
        description="Predict rows given as JSON, in the shapes POST /predict takes: a row object, e.g. "
        '\'{"sepal_length": 5.0, "sepal_width": 3.2, "petal_length": 1.5, "petal_width": 0.3}\', '
        '{"features": [numbers]}, a list of rows, {"instances": [...]} or {"columns": [...], "data": [...]}. '
        "Without ROWS, reads the JSON from stdin. Prints the answer /predict gives.",
    )
    parser.add_argument("rows", nargs="?", metavar="ROWS", help="JSON rows (default: read stdin)")
    parser.add_argument("--explain", action="store_true", help="add each row's Explanation (as ?explain=true)")
    add_name_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Parse the body as /predict does, predict, print its answer."""
    # The HTTP layer's readers, imported when the command runs (they bring Flask along).
    from mldeploy.api.answers import predict_answer
    from mldeploy.api.payload import parse_json, rows_from_body
    from mldeploy.settings import load_settings

    text = args.rows if args.rows is not None else sys.stdin.read()
    rows = rows_from_body(parse_json(text.encode()), load_settings().max_batch_rows)
    result = named_modeler(args).infer(rows)
    print_json(predict_answer(result, explain=args.explain))
    return 0
