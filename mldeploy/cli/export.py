"""``export``: write a saved version in a format other servers read (ONNX, an optional extra)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mldeploy.cli.model_name import add_name_argument, named_modeler

FORMATS = ("onnx",)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``export`` command."""
    parser = subparsers.add_parser(
        "export",
        help="write a saved model version as ONNX (needs requirements-onnx.txt)",
        description="Export VERSION (verified first) for serving elsewhere, e.g. with onnxruntime.",
    )
    parser.add_argument("version", metavar="VERSION", help="a version id, as `versions` lists them")
    parser.add_argument("--format", choices=FORMATS, default="onnx", help="output format (default: %(default)s)")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="FILE", help="file to write")
    add_name_argument(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Load the version, convert it, write the file atomically."""
    model = named_modeler(args).saved_version(args.version)
    from modeler.onnx_export import write_onnx  # imports the model stack: only when exporting

    size = write_onnx(model, args.output)
    print(f"wrote version {model.version} as ONNX to {args.output} ({size} bytes)", file=sys.stderr)
    return 0
