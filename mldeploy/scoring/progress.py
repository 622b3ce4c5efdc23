"""Progress of a scoring run: a tqdm bar on a terminal, plain periodic lines otherwise (logs,
CI, pipes), and the closing summary line."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

from tqdm import tqdm

# Seconds between plain progress lines when not on a terminal.
LINE_INTERVAL = 5.0


class Progress(Protocol):
    """Receives the rows of each finished chunk."""

    def update(self, rows: int, failed: int) -> None: ...

    def close(self) -> None: ...


class BarProgress:
    """A tqdm bar: rows, rows/s and failed rows (with a total and an ETA when it is known)."""

    def __init__(self, stream: TextIO, total: int | None) -> None:
        self.failed = 0
        self.bar = tqdm(
            total=total, unit=" rows", unit_scale=True, file=stream, desc="scoring", dynamic_ncols=True, smoothing=0.1
        )

    def update(self, rows: int, failed: int) -> None:
        self.failed += failed
        self.bar.set_postfix(failed=f"{self.failed:,}", refresh=False)
        self.bar.update(rows)

    def close(self) -> None:
        self.bar.close()


class LineProgress:
    """One plain line every ``interval`` seconds, and one at the end."""

    def __init__(self, stream: TextIO, total: int | None, interval: float = LINE_INTERVAL) -> None:
        self.stream, self.total, self.interval = stream, total, interval
        self.rows = self.failed = 0
        self.shown = -1  # rows in the last line printed
        self.start = self.last = time.monotonic()

    def update(self, rows: int, failed: int) -> None:
        self.rows += rows
        self.failed += failed
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._line(now)

    def _line(self, now: float) -> None:
        self.shown = self.rows
        rate = self.rows / max(now - self.start, 1e-9)
        of = f" of {self.total:,}" if self.total is not None else ""
        print(f"scoring: {self.rows:,}{of} rows, {rate:,.0f} rows/s, {self.failed:,} failed", file=self.stream)
        self.stream.flush()

    def close(self) -> None:
        if self.shown != self.rows:
            self._line(time.monotonic())


def progress_for(stream: TextIO, total: int | None = None) -> Progress:
    """A bar when ``stream`` is a terminal, plain lines otherwise."""
    if stream.isatty():
        return BarProgress(stream, total)
    return LineProgress(stream, total)


@dataclass(frozen=True)
class Summary:
    """What a scoring run did."""

    rows: int
    failed: int
    seconds: float
    output: Path
    errors: Path | None
    workers: int | None = None

    @property
    def scored(self) -> int:
        """Rows with a prediction in the output."""
        return self.rows - self.failed

    def line(self) -> str:
        """The one-line summary printed at the end of a run."""
        rate = self.rows / max(self.seconds, 1e-9)
        where = f" on Dask ({self.workers} workers)" if self.workers else ""
        text = (
            f"scored {self.scored:,} of {self.rows:,} rows in {self.seconds:.1f} s ({rate:,.0f} rows/s){where}"
            f" -> {self.output}"
        )
        if self.failed:
            text += f"; {self.failed:,} rows failed -> {self.errors}"
        return text
