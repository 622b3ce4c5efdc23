"""Scoring a file on Dask: the same per-chunk work as :mod:`.local`, one partition per task.

``dask.dataframe`` reads the file in partitions and ``map_partitions`` scores each on a worker,
which writes its own part of the output (``OUTPUT/part-00000.csv``, ...). Each worker process
loads the model once, from the same path, and only if its sha256 is the one this process
loaded (:func:`modeler.batch.load_pinned`). Bad rows go to one errors file numbered as in the
input, as with local scoring: a worker cannot know its partition's first row, so it writes its
errors with partition-local rows and this process renumbers them once all partitions are done.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pandas as pd

from mldeploy.extras import DASK, DASK_DATAFRAME, require
from mldeploy.scoring.chunk import answer_columns, check_columns, score_frame, text_fields
from mldeploy.scoring.formats import CSV, PARQUET_FORMAT, SUFFIX, ChunkWriter, csv_header, csv_options
from mldeploy.scoring.local import ScoreJob, finish_errors, same_columns
from mldeploy.scoring.progress import Progress, Summary
from modeler.batch import load_pinned
from modeler.loaded_model import LoadedModel

# With no scheduler address: a LocalCluster of this many single-threaded worker processes.
LOCAL_WORKERS = 2
PART_PREFIX = "part-"
# Per-partition errors wait here (inside the output folder) until they are renumbered.
ERROR_PARTS = ".errors-parts"
# Bytes of the input's head used to estimate bytes per row (for partition sizes).
SAMPLE_BYTES = 1 << 20
MIN_BLOCKSIZE = 64 * 1024
STATS = pd.DataFrame(
    {
        "partition": pd.Series(dtype="int64"),
        "rows": pd.Series(dtype="int64"),
        "failed": pd.Series(dtype="int64"),
    }
)


@contextlib.contextmanager
def dask_client(address: str | None) -> Iterator[object]:
    """A ``distributed.Client`` of the scheduler at ``address``, or of a LocalCluster of
    :data:`LOCAL_WORKERS` processes on 127.0.0.1 (no dashboard) that is closed afterwards."""
    distributed = require(DASK)
    require(DASK_DATAFRAME)
    if address:
        with distributed.Client(address) as client:
            yield client
        return
    with (
        distributed.LocalCluster(
            n_workers=LOCAL_WORKERS,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        yield client


def part_name(number: int, fmt: str) -> str:
    """File name of one partition's output."""
    return f"{PART_PREFIX}{number:05d}{SUFFIX[fmt]}"


def blocksize_for(path: Path, chunk_rows: int) -> int:
    """Bytes per partition so that one holds about ``chunk_rows`` rows of this text file."""
    with open(path, "rb") as handle:
        head = handle.read(SAMPLE_BYTES)
    bytes_per_row = len(head) / max(head.count(b"\n"), 1)
    return max(int(chunk_rows * bytes_per_row), MIN_BLOCKSIZE)


def read_partitioned(job: ScoreJob, features: Sequence[str], text: Sequence[str] = ()) -> object:
    """The input as a ``dask.dataframe``, partitioned in file order (``text``: the text fields)."""
    dd = require(DASK_DATAFRAME)
    if job.input_format == PARQUET_FORMAT:
        return dd.read_parquet(job.input)
    blocksize = blocksize_for(job.input, job.chunk_rows)
    if job.input_format == CSV:
        options = csv_options(csv_header(job.input), features, text)
        # Features as text: the scorer parses them. Dask would otherwise fix their dtype from the
        # head of the file and fail a whole partition on one bad cell.
        options["dtype"].update({f: object for f in features})
        return dd.read_csv(job.input, blocksize=blocksize, **options)
    return dd.read_json(job.input, lines=True, orient="records", blocksize=blocksize, dtype=False)


def score_partition(
    frame: pd.DataFrame,
    pin: tuple[str, str, str],
    out_dir: str,
    fmt: str,
    columns: list[str],
    text: bool,
    partition_info: dict | None = None,
) -> pd.DataFrame:
    """On a worker: score one partition (``text``: its cells are a CSV's text), write its output
    part (and its errors), return counts."""
    number = partition_info["number"] if partition_info else 0
    model = load_pinned(*pin)
    result = score_frame(model, same_columns(frame, columns), text=text)
    with ChunkWriter(Path(out_dir) / part_name(number, fmt), fmt) as out:
        out.write(result.scored)
        out.commit()
    if len(result.errors):
        with ChunkWriter(Path(out_dir) / ERROR_PARTS / part_name(number, CSV), CSV) as errors:
            errors.write(result.errors)
            errors.commit()
    return pd.DataFrame({"partition": [number], "rows": [result.rows], "failed": [result.failed_rows]})


def clear_output(out_dir: Path) -> None:
    """Remove the parts of an earlier run, so that old parts never mix with new ones."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob(PART_PREFIX + "*"):
        old.unlink()
    shutil.rmtree(out_dir / ERROR_PARTS, ignore_errors=True)


def merge_errors(out_dir: Path, stats: pd.DataFrame, path: Path) -> Path | None:
    """Renumber the partitions' errors as rows of the whole input, into one file at ``path``."""
    stats = stats.sort_values("partition")
    first_rows = stats["rows"].cumsum() - stats["rows"]
    with ChunkWriter(path, CSV) as writer:
        for number, first_row, failed in zip(stats["partition"], first_rows, stats["failed"], strict=True):
            if failed:
                part = out_dir / ERROR_PARTS / part_name(number, CSV)
                errors = pd.read_csv(part, dtype={"field": str, "problem": str, "value": str}, keep_default_na=False)
                errors["row"] += first_row
                writer.write(errors)
        found = finish_errors(writer, path)
    shutil.rmtree(out_dir / ERROR_PARTS, ignore_errors=True)
    return found


def score_on_dask(
    model: LoadedModel, model_dir: Path, job: ScoreJob, address: str | None, progress: Progress
) -> Summary:
    """Score ``job`` with ``model`` (loaded from ``model_dir``) on the Dask scheduler at
    ``address``, or on a LocalCluster; ``job.output`` is a folder of parts. Workers load the model
    from the same ``model_dir`` path and check it is this very artifact."""
    distributed = require(DASK)
    start = time.perf_counter()
    pin = (str(Path(model_dir).resolve()), model.version, model.sha256)
    try:
        with dask_client(address) as client:
            frame = read_partitioned(job, model.features, text_fields(model))
            columns = [str(c) for c in frame.columns]
            check_columns(columns, model.features, answer_columns(model))  # fail here, not on every worker
            clear_output(job.output)
            text = job.input_format == CSV
            stats = frame.map_partitions(
                score_partition,
                pin,
                str(job.output),
                job.output_format,
                columns,
                text,
                meta=STATS,
                enforce_metadata=False,
            )
            parts = []
            for future in distributed.as_completed(client.compute(stats.to_delayed())):
                part = future.result()
                progress.update(int(part["rows"].sum()), int(part["failed"].sum()))
                parts.append(part)
            workers = len(client.scheduler_info()["workers"])
    finally:
        progress.close()
    done = pd.concat(parts, ignore_index=True)
    errors_path = merge_errors(job.output, done, job.errors)
    rows, failed = int(done["rows"].sum()), int(done["failed"].sum())
    return Summary(rows, failed, time.perf_counter() - start, job.output, errors_path, workers=workers)
