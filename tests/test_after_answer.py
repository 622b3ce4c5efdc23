"""The after-answer buffer: copies kept per process and answered in batches, in order, bounded."""

from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd

from mldeploy.rollout.shadow import AfterAnswerBuffer, Copy, joined_rows


def copy_of(rows: object, handler=None, key: str = "r1") -> Copy:
    return Copy(handler or (lambda copies: None), key, None, rows, [0] * len(rows), len(rows) == 1)


def wait_for(predicate, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_rows_of_several_copies_join_in_order() -> None:
    assert joined_rows([copy_of([[1.0, 2.0]]), copy_of([[3.0, 4.0], [5.0, 6.0]])]) == [
        [1.0, 2.0],
        [3.0, 4.0],
        [5.0, 6.0],
    ]
    stacked = joined_rows([copy_of(np.array([[1.0, 2.0]])), copy_of([[3.0, 4.0]])])
    assert isinstance(stacked, np.ndarray) and stacked.tolist() == [[1.0, 2.0], [3.0, 4.0]]
    # Forms that cannot be joined: each copy is then answered alone.
    assert joined_rows([copy_of(np.zeros((1, 2))), copy_of(np.zeros((1, 3)))]) is None
    assert joined_rows([copy_of(pd.DataFrame({"a": [1]})), copy_of(pd.DataFrame({"a": [2]}))]) is None


def test_copies_are_answered_in_batches_in_arrival_order() -> None:
    seen: list[list[float]] = []
    calls: list[int] = []
    lock = threading.Lock()

    def handler(copies) -> None:
        with lock:
            calls.append(len(copies))
            seen.extend(copy.rows[0][0] for copy in copies)

    buffer = AfterAnswerBuffer(size=1000, every=0.05)
    for i in range(200):
        assert buffer.submit(copy_of([[float(i)]], handler))
    wait_for(lambda: len(seen) == 200)
    assert seen == [float(i) for i in range(200)]
    assert len(calls) < 200  # batched: far fewer calls than copies


def test_a_full_buffer_refuses_a_copy_and_a_failing_handler_stops_nothing() -> None:
    answered: list[str] = []

    def broken(copies) -> None:
        raise RuntimeError("candidate exploded")

    def fine(copies) -> None:
        answered.extend(copy.key for copy in copies)

    buffer = AfterAnswerBuffer(size=3, every=0.2)
    assert all(buffer.submit(copy_of([[1.0]], broken, key="b")) for _ in range(2))
    assert buffer.submit(copy_of([[1.0]], fine, key="f"))
    assert not buffer.submit(copy_of([[1.0]], fine, key="f"))  # full: dropped, the caller counts it
    wait_for(lambda: answered == ["f"])
    assert answered == ["f"]
    assert buffer.submit(copy_of([[1.0]], fine, key="g"))  # the thread lives on after a failure
    wait_for(lambda: answered == ["f", "g"])
    assert answered == ["f", "g"]


def test_typed_batches_checked_column_by_column_join_as_their_rows() -> None:
    from modeler.schema import INTEGER, TEXT, Field, Schema
    from modeler.typed_columns import TypedColumns
    from modeler.typed_validation import to_typed_rows

    schema = Schema((Field("plan", TEXT, categories=("basic", "pro")), Field("months", INTEGER)))
    first, _ = to_typed_rows([{"plan": "pro", "months": 3}, {"plan": "basic", "months": 5}], schema)
    second, _ = to_typed_rows([{"plan": "basic", "months": 7}, {"plan": "pro", "months": 1}], schema)
    assert isinstance(first, TypedColumns) and isinstance(second, TypedColumns)
    joined = joined_rows([copy_of(first), copy_of(second)])
    assert joined == [["pro", 3], ["basic", 5], ["basic", 7], ["pro", 1]]
