"""Work done after an answer went out: a bounded buffer per process, answered in batches.

A shadow copy (the candidate answering a request it will never return) and a canary's agreement
check (the baseline answering rows the candidate answered) run here, never on the answer's path:
the resource hands the copy over when the server closes the response (Flask's
``call_on_close``), after the last byte was written.

Copies are answered in batches, not one by one: a thread per process wakes every
:data:`BATCH_SECONDS`, takes every waiting copy and hands each kind of copy to its handler at
once, which answers all their rows in one predictor call. Woken once per request, the thread
cost the server about a fifth more CPU per request (a thread switch and a one-row prediction
each time), which on a busy machine is a fifth more latency for the primary; in batches the
copies cost a few microseconds each.

A full buffer drops the copy (and says so to its caller, who counts it): a slow candidate can
never grow a worker's memory or delay answers.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

import numpy as np

log = logging.getLogger(__name__)

# How long a copy waits at most before its batch is answered: short enough that a status read a
# second after the traffic sees every copy, long enough that a busy worker batches dozens.
BATCH_SECONDS = 0.05


class Copy(NamedTuple):
    """One request's rows to answer again after its answer went out. Copies with the same
    ``handler`` and ``key`` are answered together: ``handler(copies)``; ``context`` is the
    handler's own (a rollout)."""

    handler: Callable[[Sequence[Copy]], None]
    key: str
    context: object
    rows: object
    labels: list
    single: bool


def joined_rows(copies: Sequence[Copy]) -> object | None:
    """Every copy's rows as one batch, in order (lists chained, arrays stacked); None when
    their forms cannot be joined (each copy is then answered alone)."""
    # A typed batch checked column by column (modeler/typed_columns.py) joins as its rows.
    rows = [
        r if isinstance(r, list | np.ndarray) or not hasattr(r, "tolist") else r.tolist()
        for r in (c.rows for c in copies)
    ]
    if all(isinstance(r, list) for r in rows):
        return list(itertools.chain.from_iterable(rows))
    if all(isinstance(r, np.ndarray | list) for r in rows):
        try:
            return np.concatenate([np.asarray(r) for r in rows])
        except ValueError:  # rows of different widths or dimensions
            return None
    return None


class AfterAnswerBuffer:
    """At most ``size`` copies waiting per process, answered in batches by a daemon thread."""

    def __init__(self, size: int, every: float = BATCH_SECONDS) -> None:
        self.size = size
        self.every = every
        self._copies: list[Copy] = []
        self._busy = 0  # copies taken by the thread and not yet answered
        self._pid: int | None = None
        self._lock = threading.Lock()

    def submit(self, copy: Copy) -> bool:
        """Keep ``copy`` for the next batch; False when the buffer is full (the copy is dropped)."""
        if self._pid != os.getpid():
            self._start()
        with self._lock:
            if len(self._copies) >= self.size:
                return False
            self._copies.append(copy)
        return True

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            # A fork inherits the parent's copies but not its thread: start afresh.
            self._copies, self._busy = [], 0
        threading.Thread(target=self._run, name="mldeploy-after-answer", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(self.every)
            with self._lock:
                taken, self._copies = self._copies, []
                self._busy = len(taken)
            if taken:
                self.answer(taken)
            self._busy = 0

    @staticmethod
    def answer(copies: Sequence[Copy]) -> None:
        """Hand each group of copies (same handler and key, in arrival order) to its handler."""
        groups: dict[tuple[Callable, str], list[Copy]] = {}
        for copy in copies:
            groups.setdefault((copy.handler, copy.key), []).append(copy)
        for (handler, _), group in groups.items():
            try:
                handler(group)
            except Exception:  # a handler's failure is its own to count; the thread goes on
                log.exception("after-answer copies failed")
