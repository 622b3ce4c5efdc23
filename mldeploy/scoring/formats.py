"""File formats for scoring: chunked readers, streaming writers, and the names of outputs.

CSV carries text, so only the feature columns are parsed as numbers; every other column is read
and written back as the exact text it held. JSON lines and Parquet keep their own types.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

import pandas as pd

from mldeploy.extras import PARQUET, require
from mldeploy.scoring.names import CSV, JSONL, PARQUET_FORMAT, SUFFIX  # noqa: F401 - re-exported
from modeler.atomic import TEMP_PREFIX


def csv_options(columns: Sequence[str], features: Sequence[str], text: Sequence[str] = ()) -> dict:
    """``pandas.read_csv`` options: features parsed as numbers (only an empty cell is missing),
    except the ``text`` fields, and every other column, kept as their exact text (a text field's
    ``5`` is the text "5", never a number)."""
    return {
        "dtype": {c: str for c in columns if c not in features or c in text},
        "keep_default_na": False,
        "na_values": {f: [""] for f in features},
    }


def csv_header(path: Path) -> list[str]:
    """The column names of a CSV file."""
    return [str(c) for c in pd.read_csv(path, nrows=0).columns]


def read_chunks(
    path: Path, fmt: str, features: Sequence[str], chunk_rows: int, text: Sequence[str] = ()
) -> Iterator[pd.DataFrame]:
    """The rows of ``path`` in chunks of at most ``chunk_rows`` (at least one chunk, maybe empty)."""
    if fmt == CSV:
        chunks = pd.read_csv(path, chunksize=chunk_rows, **csv_options(csv_header(path), features, text))
    elif fmt == JSONL:
        # dtype=False: no guessing (a string stays a string, the scorer decides what it means).
        chunks = pd.read_json(path, lines=True, chunksize=chunk_rows, dtype=False)
    else:
        parquet = require(PARQUET)
        chunks = (batch.to_pandas() for batch in parquet.ParquetFile(path).iter_batches(batch_size=chunk_rows))
    empty = True
    # pandas' chunked readers hold the file open until closed; the Parquet generator needs nothing.
    with chunks if hasattr(chunks, "__enter__") else contextlib.nullcontext(chunks) as reader:
        for chunk in reader:
            empty = False
            yield chunk
    if empty:
        yield _empty_frame(path, fmt, features)


def _empty_frame(path: Path, fmt: str, features: Sequence[str]) -> pd.DataFrame:
    if fmt == CSV:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in csv_header(path)})
    if fmt == PARQUET_FORMAT:
        return require(PARQUET).read_schema(path).empty_table().to_pandas()
    return pd.DataFrame({f: pd.Series(dtype=float) for f in features})  # JSON lines: no rows, no keys


def total_rows(path: Path, fmt: str) -> int | None:
    """Rows in the file when known without reading it (Parquet's footer), else None."""
    if fmt == PARQUET_FORMAT:
        return require(PARQUET).ParquetFile(path).metadata.num_rows
    return None


class ChunkWriter:
    """Writes a table chunk by chunk to a temporary file, renamed into place by :meth:`commit`,
    so a run that fails or is killed never leaves a file that looks complete."""

    def __init__(self, path: Path, fmt: str) -> None:
        self.path = Path(path)
        self.fmt = fmt
        self.rows = 0
        self.chunks = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = self.path.with_name(f"{TEMP_PREFIX}{os.getpid()}-{self.path.name}")
        self._handle: IO[str] | None = None
        self._parquet = None  # pyarrow.parquet.ParquetWriter once the first chunk is in
        self._schema = None
        if fmt == PARQUET_FORMAT:
            require(PARQUET)  # fail before any work, not after the first chunk
        else:
            self._handle = open(self._tmp, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed in close()

    def write(self, frame: pd.DataFrame) -> None:
        """Append ``frame`` (its index is not written)."""
        if self.fmt == CSV:
            frame.to_csv(self._handle, header=self.chunks == 0, index=False)
        elif self.fmt == JSONL:
            if len(frame):
                frame.to_json(self._handle, orient="records", lines=True)
        else:
            self._write_parquet(frame)
        self.rows += len(frame)
        self.chunks += 1

    def _write_parquet(self, frame: pd.DataFrame) -> None:
        import pyarrow as pa

        parquet = require(PARQUET)
        if self._parquet is None:
            table = pa.Table.from_pandas(frame, preserve_index=False)
            self._schema = table.schema
            self._parquet = parquet.ParquetWriter(self._tmp, self._schema)
        else:
            try:
                table = pa.Table.from_pandas(frame, schema=self._schema, preserve_index=False)
            except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError) as exc:
                raise ValueError(f"a column changes type between chunks, which Parquet cannot hold: {exc}") from exc
        self._parquet.write_table(table)

    def close(self) -> None:
        """Close the temporary file (idempotent)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self._parquet is not None:
            self._parquet.close()
            self._parquet = None

    def commit(self) -> Path:
        """Close and move the finished file into place."""
        self.close()
        os.replace(self._tmp, self.path)
        return self.path

    def discard(self) -> None:
        """Close and delete the temporary file."""
        self.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> ChunkWriter:
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None:
            self.discard()
