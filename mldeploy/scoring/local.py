"""Scoring a file in this process, chunk by chunk: memory stays flat whatever the file's size."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mldeploy.scoring.chunk import score_frame, text_fields
from mldeploy.scoring.formats import CSV, ChunkWriter, read_chunks
from mldeploy.scoring.progress import Progress, Summary
from modeler.loaded_model import LoadedModel


@dataclass(frozen=True)
class ScoreJob:
    """What to score and where the results go."""

    input: Path
    input_format: str
    output: Path
    output_format: str
    errors: Path
    chunk_rows: int = 100_000


def finish_errors(writer: ChunkWriter, path: Path) -> Path | None:
    """Keep the errors file only when rows failed; one left by an earlier run would mislead."""
    if writer.rows:
        return writer.commit()
    writer.discard()
    path.unlink(missing_ok=True)
    return None


def score_file(model: LoadedModel, job: ScoreJob, progress: Progress) -> Summary:
    """Score ``job.input`` with ``model`` into ``job.output``; bad rows go to ``job.errors``."""
    start = time.perf_counter()
    rows = failed = 0
    columns: list[str] | None = None
    try:
        with ChunkWriter(job.output, job.output_format) as out, ChunkWriter(job.errors, CSV) as errors:
            chunks = read_chunks(job.input, job.input_format, model.features, job.chunk_rows, text_fields(model))
            for chunk in chunks:
                columns = columns or [str(c) for c in chunk.columns]
                result = score_frame(model, same_columns(chunk, columns), rows, text=job.input_format == CSV)
                out.write(result.scored)
                if len(result.errors):
                    errors.write(result.errors)
                rows += result.rows
                failed += result.failed_rows
                progress.update(result.rows, result.failed_rows)
            out.commit()
            errors_path = finish_errors(errors, job.errors)
    finally:
        progress.close()
    return Summary(rows, failed, time.perf_counter() - start, job.output, errors_path)


def same_columns(chunk: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """``chunk`` with the first chunk's columns. JSON lines may name other keys further down:
    a feature a row lacks is then missing in that row, and keys the first chunk did not have
    are left out (so every chunk of the output has the same columns)."""
    names = [str(c) for c in chunk.columns]
    if names == columns:
        return chunk
    return chunk.set_axis(names, axis=1).reindex(columns=columns)
