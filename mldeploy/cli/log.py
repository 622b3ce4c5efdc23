"""``log``: the prediction log. ``log export`` writes it as CSV or Parquet."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mldeploy.cli.exit_codes import EXIT_ERROR, EXIT_OK, EXIT_USAGE


def _since(text: str):  # -> datetime
    from mldeploy.monitoring.timespec import parse_since

    try:
        return parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``log`` command and its ``export`` action."""
    parser = subparsers.add_parser(
        "log",
        help="the prediction log: export it as CSV or Parquet",
        description="Read the prediction log the servers write (MLDEPLOY_LOG_DATABASE, by default "
        "predictions.sqlite3 in the model directory).",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    export = actions.add_parser(
        "export",
        help="write the logged predictions to a CSV or Parquet file",
        description="Write one row per logged prediction (time, request_id, row, model, version, each input "
        "field, each output field, one column per class probability), oldest first, to FILE: CSV or "
        "Parquet by its extension (.csv, .parquet/.pq; Parquet needs requirements-parquet.txt). The file "
        "appears only when complete.",
    )
    export.add_argument(
        "--since", type=_since, metavar="T", help="only rows answered since T: an ISO time (UTC if no zone), or 1h, 30m"
    )
    export.add_argument("--version", metavar="V", help="only rows answered by model version V")
    export.add_argument("--model", metavar="NAME", help="only rows of the model NAME")
    export.add_argument(
        "--database",
        metavar="URL",
        help="a SQLite file or a postgresql:// URL (default: $MLDEPLOY_LOG_DATABASE, else predictions.sqlite3 "
        "in the model directory)",
    )
    export.add_argument("-o", "--output", required=True, type=Path, metavar="FILE", help="file to write")
    export.set_defaults(run=run_export)


def database(args: argparse.Namespace) -> str:
    """The database to read: ``--database``, else MLDEPLOY_LOG_DATABASE, else the model directory's file."""
    if args.database:
        return args.database
    from mldeploy.cli.context import configured_modeler
    from mldeploy.monitoring.store import DEFAULT_FILE
    from mldeploy.settings import load_settings

    return load_settings().log_database or str(configured_modeler().model_dir / DEFAULT_FILE)


def run_export(args: argparse.Namespace) -> int:
    """Export the selected rows; prints how many went where on stderr."""
    from mldeploy.monitoring.export import EXPORT_FORMATS, export_log
    from mldeploy.monitoring.store import LogDatabaseError, open_store
    from mldeploy.scoring.names import format_of

    if format_of(args.output) not in EXPORT_FORMATS:
        print(f"error: cannot tell the format of {args.output}: name it .csv, or .parquet/.pq", file=sys.stderr)
        return EXIT_USAGE
    try:
        store = open_store(database(args), create=False)
        try:
            rows = export_log(store, args.output, since=args.since, version=args.version, model=args.model)
        finally:
            store.close()
    except (LogDatabaseError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"wrote {rows} logged prediction(s) from {store.name} to {args.output}", file=sys.stderr)
    return EXIT_OK
