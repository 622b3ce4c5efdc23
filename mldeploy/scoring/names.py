"""Scoring file formats by name, and the names of outputs: no pandas, so the command line can
build its parser (and `serve` can hand over to gunicorn) without importing the data stack."""

from __future__ import annotations

import os
from pathlib import Path

CSV, PARQUET_FORMAT, JSONL = "csv", "parquet", "jsonl"
FORMATS = (CSV, PARQUET_FORMAT, JSONL)
EXTENSIONS = {".csv": CSV, ".parquet": PARQUET_FORMAT, ".pq": PARQUET_FORMAT, ".jsonl": JSONL, ".ndjson": JSONL}
SUFFIX = {CSV: ".csv", PARQUET_FORMAT: ".parquet", JSONL: ".jsonl"}
ERRORS_SUFFIX = ".errors.csv"


def format_of(path: str | os.PathLike) -> str | None:
    """The format a file name implies (``.csv``, ``.parquet``/``.pq``, ``.jsonl``/``.ndjson``)."""
    return EXTENSIONS.get(Path(path).suffix.lower())


def default_output(input_path: Path, fmt: str, partitioned: bool = False) -> Path:
    """``data.csv`` -> ``data.scored.csv`` (or the folder ``data.scored`` for partitioned output)."""
    stem = input_path.name[: -len(input_path.suffix)] if input_path.suffix else input_path.name
    return input_path.with_name(stem + ".scored" + ("" if partitioned else SUFFIX[fmt]))


def default_errors(output: Path) -> Path:
    """``data.scored.csv`` -> ``data.scored.errors.csv``: the bad rows sit beside the output."""
    stem = output.name[: -len(output.suffix)] if output.suffix.lower() in EXTENSIONS else output.name
    return output.with_name(stem + ERRORS_SUFFIX)
