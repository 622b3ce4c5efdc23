"""Work done after an answer went out: a bounded queue and one thread per process.

A shadow copy (the candidate answering a request it will never return) and a canary's agreement
check (the baseline answering rows the candidate answered) run here, never on the answer's path:
the resource hands the job over when the server closes the response (Flask's
``call_on_close``), after the last byte was written. A full queue drops the job (and says so to
its caller, who counts it): a slow candidate can never grow a worker's memory or delay answers.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)

Job = Callable[[], None]


class AfterAnswerQueue:
    """At most ``size`` jobs waiting per process, run one at a time by a daemon thread."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._queue: queue.Queue[Job] = queue.Queue(maxsize=size)
        self._pid: int | None = None
        self._lock = threading.Lock()

    def submit(self, job: Job) -> bool:
        """Queue ``job``; False when the queue is full (the job is dropped)."""
        if self._pid != os.getpid():
            self._start()
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            return False
        return True

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            # A fork inherits the parent's queue object but not its thread: start afresh.
            self._queue = queue.Queue(maxsize=self.size)
        threading.Thread(target=self._run, name="mldeploy-after-answer", daemon=True).start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                job()
            except Exception:  # a job's failure is its own to count; the thread goes on
                log.exception("after-answer job failed")
            finally:
                self._queue.task_done()

    def join(self, timeout: float = 10.0) -> None:
        """Wait until the queue is empty (tests and benchmarks)."""
        import time

        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < deadline:
            time.sleep(0.01)
