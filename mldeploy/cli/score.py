"""``score``: score a CSV, JSON-lines or Parquet file in chunks, locally or on Dask."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from mldeploy.cli.exit_codes import EXIT_INVALID_INPUT, EXIT_OK, EXIT_USAGE
from mldeploy.cli.model_name import add_name_argument, named_modeler
from mldeploy.scoring.names import FORMATS, default_errors, default_output, format_of
from mldeploy.settings import integer, parsed_argument

if TYPE_CHECKING:
    from mldeploy.scoring.local import ScoreJob

DEFAULT_CHUNK_ROWS = 100_000
# `--dask` given without an address: start a LocalCluster.
LOCAL_CLUSTER = ""


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``score`` command."""
    parser = subparsers.add_parser(
        "score",
        help="score a CSV, JSON-lines or Parquet file in chunks (optionally on Dask)",
        description="Score every row of INPUT (.csv, .jsonl/.ndjson, .parquet/.pq). The output has the "
        "input's columns plus Class, one probability column per class, ModelVersion and Warnings (the "
        "fields outside their training range, ';'-separated, empty when none). Rows with a missing, "
        "non-numeric or non-finite feature are left out and listed in an errors file with their row "
        "number (0 = first data row) and problem; the exit code is then 3 unless --allow-errors.",
    )
    parser.add_argument("input", type=Path, nargs="?", metavar="INPUT", help="the file to score")
    parser.add_argument(
        "-o", "--output", type=Path, help="output file, or folder with --dask (default: INPUT.scored.*)"
    )
    parser.add_argument(
        "--format", choices=FORMATS, help="output format (default: from the output's extension, else the input's)"
    )
    parser.add_argument("--errors", type=Path, help="errors file (CSV; default: OUTPUT.errors.csv)")
    parser.add_argument(
        "--chunk-rows",
        type=parsed_argument(integer(1)),
        default=DEFAULT_CHUNK_ROWS,
        metavar="N",
        help=f"rows per chunk, or about per Dask partition (default: {DEFAULT_CHUNK_ROWS:,})",
    )
    parser.add_argument("--allow-errors", action="store_true", help="exit 0 even when some rows failed")
    parser.add_argument(
        "--dask",
        nargs="?",
        const=LOCAL_CLUSTER,
        metavar="SCHEDULER_ADDRESS",
        help="score on Dask: on the scheduler at SCHEDULER_ADDRESS (e.g. tcp://10.0.0.5:8786), or on a "
        "local cluster of 2 worker processes when none is given; the output is then a folder of parts",
    )
    add_name_argument(parser)
    parser.set_defaults(run=run)


def _fix_dask_argument(args: argparse.Namespace) -> None:
    # `score --dask data.csv` hands the file to --dask; with INPUT absent that is what was meant.
    if args.input is None and args.dask and Path(args.dask).is_file():
        args.input, args.dask = Path(args.dask), LOCAL_CLUSTER


def make_job(args: argparse.Namespace) -> ScoreJob:
    """The job the arguments describe (formats and default paths resolved)."""
    from mldeploy.scoring.local import ScoreJob  # pandas: only once a file is really scored

    input_format = format_of(args.input)
    if input_format is None:
        raise ValueError(f"cannot tell the format of {args.input}: name it .csv, .jsonl/.ndjson or .parquet/.pq")
    output_format = args.format or (args.output and args.dask is None and format_of(args.output)) or input_format
    output = args.output or default_output(args.input, output_format, partitioned=args.dask is not None)
    return ScoreJob(
        input=args.input,
        input_format=input_format,
        output=output,
        output_format=output_format,
        errors=args.errors or default_errors(output),
        chunk_rows=args.chunk_rows,
    )


def run(args: argparse.Namespace) -> int:
    """Score, print the summary line; exit 3 when rows failed (unless --allow-errors)."""
    _fix_dask_argument(args)
    if args.input is None:
        print("error: score needs an INPUT file", file=sys.stderr)
        return EXIT_USAGE
    if not args.input.is_file():
        raise FileNotFoundError(f"no such input file: {args.input}")
    try:
        job = make_job(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    modeler = named_modeler(args)
    model = modeler.ensure_ready()  # one version for the whole run, even if CURRENT moves meanwhile
    from mldeploy.scoring.formats import total_rows
    from mldeploy.scoring.local import score_file
    from mldeploy.scoring.progress import progress_for

    progress = progress_for(sys.stderr, total_rows(job.input, job.input_format))
    if args.dask is None:
        summary = score_file(model, job, progress)
    else:
        from mldeploy.scoring.cluster import score_on_dask  # needs the optional dask extra

        summary = score_on_dask(model, modeler.model_dir, job, args.dask or None, progress)
    print(summary.line())
    if summary.failed and not args.allow_errors:
        return EXIT_INVALID_INPUT
    return EXIT_OK
