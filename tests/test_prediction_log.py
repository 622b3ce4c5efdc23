"""The prediction log (mldeploy.monitoring) on real databases: SQLite files in tmp_path and a
throwaway PostgreSQL server (tests/postgres.py). Most tests run on both backends.

What is shown: every row recorded once, whatever the threads, processes and replicas; close()
drains; an unreachable database never reaches the caller, counts what it drops and warns once;
sampling by request id; retention by rows and by age; a forked worker writes its own rows.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import orjson
import pytest

from mldeploy.contract import CLASS, PROBABILITIES
from mldeploy.monitoring import LogRecord, PredictionLog, open_store, sampled
from mldeploy.monitoring.packing import pack_json
from mldeploy.monitoring.store import PAGE_SIZE, SMALL_BLOB, PostgresStore, Row, statement_sizes
from mldeploy.monitoring.writer import CLOSED, DATABASE, INVALID, QUEUE_FULL, REJECTED
from tests.support import REPO, SEED_ROW, clean_env, free_port

if TYPE_CHECKING:
    from tests.postgres import PostgresServer

# The postgres fixtures; loaded as a plugin (not imported) so that pytest rewrites its asserts.
pytest_plugins = ["tests.postgres"]

ANSWER = {CLASS: "setosa", PROBABILITIES: {"setosa": 1.0, "versicolor": 0.0, "virginica": 0.0}}
LOGGER = "mldeploy.monitoring"


@pytest.fixture
def database(log_database: str) -> str:
    """A new, empty prediction log database of each backend (tests/postgres.py)."""
    return log_database


def logged(database: str, **selection: object) -> list[LogRecord]:
    """Every row the database holds, read over a connection of the test's own."""
    store = open_store(database, create=False)
    try:
        return list(store.rows(**selection))
    finally:
        store.close()


def keys(records: list[LogRecord]) -> list[tuple[str, int]]:
    return [(r.request_id, r.row) for r in records]


def row(i: int) -> dict:
    """A distinct input row (so a mix-up of rows would show)."""
    return {**SEED_ROW, "sepal_length": 4.0 + i / 1000}


def warnings_of(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == LOGGER and r.levelno == logging.WARNING and text in r.getMessage()
    ]


def test_rows_round_trip_with_their_request_row_model_version_and_time(database: str) -> None:
    before = datetime.now(UTC)
    answers = [ANSWER, {CLASS: "virginica", PROBABILITIES: {"setosa": 0.0, "versicolor": 0.25, "virginica": 0.75}}]
    with PredictionLog(database, model="iris") as log:
        assert log.record("req-1", "v1", [row(1), row(2)], answers)
        assert log.record("req-2", "v2", [row(3)], [ANSWER], model="other")
        assert log.flush(30)
        assert (log.written, log.dropped, log.queued) == (3, 0, 0)
    records = logged(database)
    assert keys(records) == [("req-1", 0), ("req-1", 1), ("req-2", 0)]
    assert [(r.model, r.version) for r in records] == [("iris", "v1"), ("iris", "v1"), ("other", "v2")]
    assert [r.inputs for r in records] == [row(1), row(2), row(3)]
    assert [list(r.inputs) for r in records] == [list(SEED_ROW)] * 3  # the fields keep their order
    assert [r.outputs for r in records] == [*answers, ANSWER]
    assert all(before <= r.time <= datetime.now(UTC) and r.time.tzinfo == UTC for r in records)
    assert [r.request_id for r in logged(database, version="v2")] == ["req-2"]
    assert [r.request_id for r in logged(database, model="iris")] == ["req-1", "req-1"]
    assert logged(database, since=datetime.now(UTC)) == []


def test_values_json_cannot_hold_natively_are_still_written(database: str) -> None:
    # numpy numbers straight from a model, and int class labels (JSON keys must be strings).
    outputs = [{CLASS: np.int64(1), PROBABILITIES: {0: np.float32(0.25), 1: 0.75}}]
    with PredictionLog(database) as log:
        log.record("req-np", "v1", [{"x0": np.float64(1.5)}], outputs)
    [record] = logged(database)
    assert record.inputs == {"x0": 1.5}
    assert record.outputs == {CLASS: 1, PROBABILITIES: {"0": 0.25, "1": 0.75}}


def test_many_threads_recording_at_once_leave_every_row_exactly_once(database: str) -> None:
    threads, requests_each = 8, 150
    log = PredictionLog(database, batch_size=64, flush_interval=0.05)
    start = threading.Barrier(threads)

    def client(t: int) -> None:
        start.wait()
        for i in range(requests_each):
            rows = [row(j) for j in range(1 + i % 3)]  # batches of 1 to 3 rows
            assert log.record(f"t{t}-r{i}", "v1", rows, [ANSWER] * len(rows))

    workers = [threading.Thread(target=client, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert log.close(60)
    expected = {(f"t{t}-r{i}", j) for t in range(threads) for i in range(requests_each) for j in range(1 + i % 3)}
    found = keys(logged(database))
    assert len(found) == len(set(found)) == len(expected)
    assert set(found) == expected
    assert (log.written, log.dropped) == (len(expected), 0)


def test_close_drains_a_full_queue_and_later_records_are_counted_not_raised(
    database: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A writer that would wait ten minutes for a batch: only close() makes it write.
    log = PredictionLog(database, queue_size=500, batch_size=10_000, flush_interval=600)
    for i in range(500):
        assert log.record(f"r{i}", "v1", [row(i)], [ANSWER])
    assert log.queued == 500
    assert not any(log.record(f"over{i}", "v1", [row(i)], [ANSWER]) for i in range(20))  # full: dropped
    assert log.close(60)
    assert (log.written, log.dropped, log.dropped_by_reason[QUEUE_FULL]) == (500, 20, 20)
    assert len(logged(database)) == 500
    assert len(warnings_of(caplog, "queue is full")) == 1  # one warning, not one per record
    assert not log.record("late", "v1", [row(0)], [ANSWER])
    assert log.dropped_by_reason[CLOSED] == 1


def test_the_queue_holds_queue_size_one_row_requests_or_16_times_as_many_rows_of_batches(database: str) -> None:
    # The bound is memory: a row of a batch takes a 16th of what a one-row request takes.
    def rows(n: int) -> tuple[list[dict], list[dict]]:
        return [row(i) for i in range(n)], [ANSWER] * n

    log = PredictionLog(database, queue_size=10, batch_size=10**6, flush_interval=600)
    assert log.record("six-places", "v1", *rows(16 * 6))
    assert log.record("one-place", "v1", *rows(1))
    assert log.record("three-places", "v1", *rows(16 * 2 + 1))
    assert not log.record("one-too-many", "v1", *rows(1))
    assert (log.queued, log.dropped_by_reason[QUEUE_FULL]) == (96 + 1 + 33, 1)
    assert log.close(60) and (log.written, log.dropped) == (130, 1)
    assert Counter(r.request_id for r in logged(database)) == {"six-places": 96, "one-place": 1, "three-places": 33}


def test_a_batch_larger_than_the_queue_goes_in_when_the_queue_is_empty(database: str) -> None:
    rows = 16 * 10 + 1  # 11 places in a queue of 10
    with PredictionLog(database, queue_size=10) as log:
        assert log.record("big", "v1", [row(i) for i in range(rows)], [ANSWER] * rows)
    assert len(logged(database)) == rows


def test_counter_callbacks_see_every_change_and_cannot_break_the_log(
    database: str, caplog: pytest.LogCaptureFixture
) -> None:
    written, dropped = [], []

    def broken(n: int) -> None:
        written.append(n)
        raise RuntimeError("a broken metrics backend")

    with PredictionLog(database, queue_size=1, flush_interval=600, batch_size=100, on_written=broken) as log:
        log.on_dropped = lambda n, reason: dropped.append((n, reason))
        log.record("a", "v1", [row(1), row(2), row(3)], [ANSWER] * 3)
        log.record("b", "v1", [row(4)], [ANSWER])  # the queue is full
        log.record("c", "v1", [row(5)], [ANSWER, ANSWER])  # 1 row, 2 outputs: cannot be logged
        assert log.flush(30)
    assert sum(written) == 3 and dropped == [(1, QUEUE_FULL), (1, INVALID)]
    assert any("callback" in r.getMessage() for r in caplog.records if r.name == LOGGER)


def test_bad_arguments_are_dropped_and_counted_never_raised(database: str) -> None:
    with PredictionLog(database) as log:
        assert not log.record("mismatch", "v1", [row(1), row(2)], [ANSWER])
        assert log.record(None, "v1", [row(3)], [ANSWER])  # type: ignore[arg-type]  # found by the writer
        assert log.record("good", "v1", [row(4)], [ANSWER])
        assert not log.record("none", "v1", [], [])
        assert log.flush(30)
    assert keys(logged(database)) == [("good", 0)]  # a bad request does not take its batch with it
    assert (log.dropped_by_reason[INVALID], log.dropped_by_reason[REJECTED], log.written) == (2, 1, 1)
    sampling = PredictionLog(database, sample_rate=0.5)
    assert sampling.record(12345, "v1", [row(1)], [ANSWER]) is False  # type: ignore[arg-type]
    sampling.close()


def packed(request_id: str, answered: float, rows: list[dict]) -> Row:
    """A request as the writer inserts it: its rows and answers packed."""
    return (request_id, "iris", "v1", answered, len(rows), pack_json(rows), pack_json([ANSWER] * len(rows)))


def test_writing_the_same_rows_twice_keeps_one_copy(database: str) -> None:
    # The writer re-sends a batch whose commit it could not confirm: the key makes that harmless.
    rows = [packed("req", time.time(), [row(i) for i in range(3)]), packed("other", time.time(), [row(4)])]
    store = open_store(database)
    try:
        store.insert(rows)
        store.insert(rows)
        assert store.count() == 4
        assert [(r.row, r.inputs) for r in store.request_rows("req")] == [(i, row(i)) for i in range(3)]
    finally:
        store.close()


def test_one_insert_of_any_number_of_requests_writes_each_once_with_its_values(database: str) -> None:
    # 10,007 requests: more than one SQLite statement's parameters allow, and no power of two
    # (SQLite splits them into statements of power-of-two sizes); one request's packed inputs
    # are over SMALL_BLOB (bound as bytes, the small ones as a bytearray copy).
    rows = [packed(f"r{i:05d}", 1_000.0 + i, [row(i % 1000)]) for i in range(10_007)]
    rows.append(packed("big", 1_000.0, [row(i) for i in range(1_000)]))
    assert len(rows[-1][5]) > SMALL_BLOB > len(rows[0][5])
    store = open_store(database)
    try:
        store.insert(rows)
        assert store.count() == 10_007 + 1_000
        held = {(r.request_id, r.row): r.inputs for r in store.rows()}
        assert store.request_rows("r10006")[0].outputs == ANSWER
    finally:
        store.close()
    assert len(held) == 11_007
    assert all(held[(f"r{i:05d}", 0)] == row(i % 1000) for i in range(10_007))
    assert [held[("big", i)] for i in range(1_000)] == [row(i) for i in range(1_000)]


def test_statements_have_power_of_two_sizes_within_the_limit_and_cover_every_row() -> None:
    for count, limit in [(0, 4680), (1, 4680), (1000, 4680), (10_007, 4680), (5, 1), (4681, 4680), (7, 3)]:
        sizes = statement_sizes(count, limit)
        assert sum(sizes) == count and sizes == sorted(sizes, reverse=True)
        assert all(size & (size - 1) == 0 and 0 < size <= limit for size in sizes)
    assert statement_sizes(1000, 4680) == [512, 256, 128, 64, 32, 8]


def test_a_batch_with_requests_already_present_writes_the_new_ones_and_keeps_the_old(database: str) -> None:
    # PostgreSQL writes a batch by COPY, which refuses the whole batch on one key already there:
    # the batch goes in again by INSERT, every new request written, every old one left as it was.
    first = [packed("old", 1_000.0, [row(1)]), packed("twice", 1_000.0, [row(2)])]
    again = [
        packed("twice", 2_000.0, [row(20)]),
        packed("new", 2_000.0, [row(3), row(4)]),
        packed("old", 2_000.0, [row(10)]),
        packed("new", 2_000.0, [row(30)]),  # twice in one batch: its first copy is kept
    ]
    store = open_store(database)
    try:
        store.insert(first)
        store.insert(again)
        held: dict[str, list] = {}
        for r in store.rows():
            held.setdefault(r.request_id, []).append((r.row, r.inputs, r.time.timestamp()))
    finally:
        store.close()
    assert held == {
        "old": [(0, row(1), 1_000.0)],
        "twice": [(0, row(2), 1_000.0)],
        "new": [(0, row(3), 2_000.0), (1, row(4), 2_000.0)],
    }


def test_postgres_copies_packed_arrays_back_bit_for_bit_in_cheaply_compressed_columns(postgres_url: str) -> None:
    import psycopg

    from mldeploy.monitoring.packing import pack_inputs, pack_table_outputs

    # A 10,000-row request as the server packs it: a float array, an answer-table index per row.
    rng = np.random.default_rng(7)
    values = np.round(rng.uniform(0, 8, (10_000, 4)), 2)
    values[0] = [np.nan, np.inf, -0.0, 5e-324]  # exact bits, whatever the value
    names = ("setosa", "unused", "versicolor", "unused too", "virginica")
    entries = rng.choice([0, 2, 4], 10_000)  # some of the table's entries, not all
    answers = [json.dumps({CLASS: name}).encode() for name in names]
    inputs = pack_inputs(["a", "b", "c", "d"], values)
    outputs = pack_table_outputs(entries, [orjson.Fragment(a) for a in answers])
    store = open_store(postgres_url)
    try:
        store.insert([("big", "iris", "v1", 1_700_000_000.25, 10_000, inputs, outputs)])
        records = store.request_rows("big")
    finally:
        store.close()
    assert len(records) == 10_000 and records[0].time == datetime.fromtimestamp(1_700_000_000.25, UTC)
    got = np.array([[r.inputs[k] for k in "abcd"] for r in records])
    assert got.tobytes() == values.tobytes()
    assert [r.outputs[CLASS] for r in records] == [names[e] for e in entries]
    with psycopg.connect(postgres_url) as conn:
        raw = conn.execute("SELECT inputs, outputs FROM predictions WHERE request_id = 'big'").fetchone()
    assert (bytes(raw[0]), bytes(raw[1])) == (inputs, outputs)
    assert cheaply_stored(postgres_url)


def test_a_batch_of_float32_values_is_written_as_float32_and_reads_back_the_same(database: str) -> None:
    from mldeploy.monitoring.packing import NARROW_FROM, pack_inputs, unpack_inputs

    # An Open Inference FP32 batch: every validated value is a float32 exactly.
    rng = np.random.default_rng(3)
    fp32 = rng.uniform(0, 8, (10_000, 4)).astype(np.float32).astype(np.float64)
    fp32[0] = np.array([-0.0, 0.0, 3.4e38, -1.5], dtype=np.float32)
    narrow = pack_inputs(["a", "b", "c", "d"], fp32)
    assert len(narrow) < fp32.nbytes * 0.51, "written in half the bytes"
    store = open_store(database)
    try:
        store.insert([("fp32", "iris", "v1", 1_700_000_000.0, 10_000, narrow, pack_json([ANSWER] * 10_000))])
        records = store.request_rows("fp32")
    finally:
        store.close()
    got = np.array([[r.inputs[k] for k in "abcd"] for r in records])
    assert got.dtype == np.float64 and got.tobytes() == fp32.tobytes()  # -0.0 keeps its sign
    # Values float32 cannot hold exactly keep float64, bit for bit: a NaN, one beyond its range
    # (no overflow warning: warnings fail tests), one it would round, a float64 subnormal.
    for odd in (np.nan, 1e300, 0.1, 5e-324):
        values = fp32.copy()
        values[17, 2] = odd
        packed = pack_inputs(["a", "b", "c", "d"], values)
        assert len(packed) > values.nbytes
        back = np.array([list(r.values()) for r in unpack_inputs(packed)])
        assert back.tobytes() == values.tobytes()
    small = fp32[: NARROW_FROM // 4 - 1]  # too few values for the check to pay: as they are
    assert len(pack_inputs(["a", "b", "c", "d"], small)) > small.nbytes


def packed_columns(url: str) -> dict[str, tuple[str, str]]:
    """The packed columns' compression method and storage in PostgreSQL's catalog."""
    import psycopg

    with psycopg.connect(url) as conn:
        found = conn.execute(
            "SELECT attname, attcompression, attstorage FROM pg_attribute "
            "WHERE attrelid = 'predictions'::regclass AND attname IN ('inputs', 'outputs')"
        ).fetchall()
    return {name: (method, storage) for name, method, storage in found}


def cheaply_stored(url: str) -> bool:
    # lz4 where the server has it (Debian's has), else uncompressed out of line: never pglz.
    return all(method == "l" or storage == "e" for method, storage in packed_columns(url).values())


def test_postgres_tables_made_before_get_the_cheap_compression_when_opened(postgres_url: str) -> None:
    import psycopg

    open_store(postgres_url).close()
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        conn.execute("ALTER TABLE predictions ALTER COLUMN inputs SET COMPRESSION pglz")
        conn.execute("ALTER TABLE predictions ALTER COLUMN outputs SET STORAGE EXTENDED")
        conn.execute("ALTER TABLE predictions ALTER COLUMN outputs SET COMPRESSION DEFAULT")
    assert not cheaply_stored(postgres_url)
    open_store(postgres_url).close()
    assert cheaply_stored(postgres_url)


def run_sql(database: str, statement: str) -> None:
    """One statement, committed, over a connection of the test's own."""
    if database.startswith("postgresql"):
        import psycopg

        with psycopg.connect(database, autocommit=True) as conn:
            conn.execute(statement)
    else:
        with contextlib.closing(sqlite3.connect(database, isolation_level=None)) as conn:
            conn.execute(statement)


def index_names(database: str) -> set[str]:
    """The names of the database's indexes."""
    if database.startswith("postgresql"):
        import psycopg

        with psycopg.connect(database) as conn:
            return {name for (name,) in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")}
    with contextlib.closing(sqlite3.connect(database)) as conn:
        return {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}


def test_a_log_with_the_first_schemas_index_gets_the_one_in_arrival_order_when_opened(database: str) -> None:
    """The first schema's index on (model, version, time DESC) took each new row at the left of
    its run (the costly case of a B-tree insert); a database that has it gets the index in
    arrival order and loses the old one the next time a writer opens it, its rows kept."""
    with PredictionLog(database) as prediction_log:
        prediction_log.record("r-old", "v1", [{"x": 1.0}], [{"Class": "a"}])
    run_sql(database, "DROP INDEX predictions_by_model_version")
    run_sql(database, "CREATE INDEX predictions_by_version ON predictions (model, version, time DESC)")
    assert "predictions_by_version" in index_names(database)
    open_store(database).close()
    found = index_names(database)
    assert "predictions_by_model_version" in found and "predictions_by_version" not in found
    assert [r.request_id for r in logged(database, version="v1")] == ["r-old"]


def test_the_schema_has_both_tables_keyed_by_request_and_row_and_the_indexes(database: str) -> None:
    open_store(database).close()
    if database.startswith("postgresql"):
        import psycopg

        with psycopg.connect(database) as conn:
            keys_of = dict(
                conn.execute(
                    "SELECT tc.table_name, string_agg(kcu.column_name, ',' ORDER BY kcu.ordinal_position) "
                    "FROM information_schema.table_constraints tc JOIN information_schema.key_column_usage kcu "
                    "USING (constraint_name, table_name) WHERE tc.constraint_type = 'PRIMARY KEY' "
                    "AND tc.table_schema = 'public' GROUP BY 1"
                ).fetchall()
            )
    else:
        with sqlite3.connect(database) as conn:
            keys_of = {
                table: ",".join(
                    c[1] for c in sorted(conn.execute(f"PRAGMA table_info({table})"), key=lambda c: c[5]) if c[5]
                )
                for table in ("predictions", "feedback")
            }
            assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            # Set before the file had content (later it cannot change): large packed batches.
            assert conn.execute("PRAGMA page_size").fetchone()[0] == PAGE_SIZE
    assert {"predictions_by_model_version", "predictions_by_time", "feedback_by_time"} <= index_names(database)
    # One row per request (its rows packed); feedback per answered row.
    assert keys_of == {"predictions": "request_id", "feedback": "request_id,row_index"}


# ---- sampling -------------------------------------------------------------------------------


def test_sampling_keeps_the_rate_decides_by_request_id_and_agrees_across_processes() -> None:
    ids = [f"req-{i:05d}" for i in range(10_000)]
    chosen = [i for i in ids if sampled(i, 0.3)]
    assert 0.27 <= len(chosen) / len(ids) <= 0.33, len(chosen)
    assert chosen == [i for i in ids if sampled(i, 0.3)]  # deterministic
    assert set(chosen) <= {i for i in ids if sampled(i, 0.5)}  # a larger rate keeps a superset
    assert all(sampled(i, 1.0) for i in ids) and not any(sampled(i, 0.0) for i in ids)
    # Another interpreter with another hash seed (as another replica would be) picks the same.
    script = "from mldeploy.monitoring import sampled; print(sum(sampled(f'req-{i:05d}', 0.3) for i in range(10000)))"
    other = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO,
        env=clean_env(PYTHONHASHSEED="12345"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert other.stdout.strip() == str(len(chosen)), other.stderr


def test_a_sampled_request_is_logged_with_all_its_rows_or_not_at_all(tmp_path: Path) -> None:
    database = str(tmp_path / "sampled.sqlite3")
    ids = [f"req-{i}" for i in range(2000)]
    with PredictionLog(database, sample_rate=0.3) as log:
        queued = [log.record(i, "v1", [row(0), row(1), row(2)], [ANSWER] * 3) for i in ids]
    per_request = Counter(r.request_id for r in logged(database))
    assert set(per_request.values()) == {3}
    assert set(per_request) == {i for i in ids if sampled(i, 0.3)} == {i for i, q in zip(ids, queued, strict=True) if q}
    assert log.dropped == 0  # not sampled is not dropped


# ---- retention ------------------------------------------------------------------------------


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_retention_by_rows_keeps_the_newest(database: str) -> None:
    log = PredictionLog(database, max_rows=50, prune_interval=0.05, flush_interval=0.05)
    for i in range(200):
        log.record(f"r{i:03d}", "v1", [row(i)], [ANSWER])
        if i % 50 == 49:
            log.flush(30)
    wait_for(lambda: len(logged(database)) == 50)
    log.close(30)
    assert [r.request_id for r in logged(database)] == [f"r{i:03d}" for i in range(150, 200)]


def test_retention_by_age_deletes_old_predictions_and_feedback(database: str) -> None:
    now = time.time()
    store = open_store(database)
    store.insert([packed("old", now - 7200, [row(i) for i in range(5)]), packed("recent", now - 60, [row(9)])])
    # Feedback arrives with a later issue; its table is pruned by the same age already.
    cursor = store._conn.cursor()
    marker = "%s" if isinstance(store, PostgresStore) else "?"
    for request_id, age in (("old", 7200), ("recent", 60)):
        cursor.execute(
            f"INSERT INTO feedback (request_id, row_index, actual, time) VALUES ({marker}, 0, '\"setosa\"', {marker})",
            (request_id, store._time_param(now - age)),
        )
    cursor.close()
    store.close()
    with PredictionLog(database, max_age=3600, prune_interval=0.05) as log:
        log.record("new", "v1", [row(0)], [ANSWER])  # the writer starts, and prunes at once
        wait_for(lambda: "old" not in {r.request_id for r in logged(database)})
    assert sorted(r.request_id for r in logged(database)) == ["new", "recent"]
    reader = open_store(database, create=False)
    cursor = reader._conn.cursor()
    cursor.execute("SELECT request_id FROM feedback")
    assert [r[0] for r in cursor.fetchall()] == ["recent"]
    cursor.close()
    reader.close()


# ---- processes: replicas, forked workers, interpreter exit -----------------------------------

REPLICA = """
import sys
from mldeploy.monitoring import PredictionLog
database, name, requests = sys.argv[1], sys.argv[2], int(sys.argv[3])
log = PredictionLog(database, batch_size=100, flush_interval=0.05)
row = {"sepal_length": 5.0, "sepal_width": 3.2, "petal_length": 1.5, "petal_width": 0.3}
answer = {"Class": "setosa", "Probabilities": {"setosa": 1.0, "versicolor": 0.0, "virginica": 0.0}}
for i in range(requests):
    log.record(f"{name}-{i}", "v1", [row, row], [answer, answer])
# No close(): the interpreter's exit drains the queue.
"""


def test_two_replicas_write_one_database_and_exit_without_losing_rows(database: str) -> None:
    requests = 1500
    replicas = [
        subprocess.Popen([sys.executable, "-c", REPLICA, database, name, str(requests)], cwd=REPO, env=clean_env())
        for name in ("replica-a", "replica-b")
    ]
    assert [p.wait(timeout=180) for p in replicas] == [0, 0]
    found = Counter(r.request_id.split("-")[1] for r in logged(database))
    assert found == {"a": 2 * requests, "b": 2 * requests}
    assert len(set(keys(logged(database)))) == 4 * requests


def wait_child(pid: int, timeout: float) -> int:
    """The exit code of forked child ``pid``; a child still running after ``timeout`` (a lock
    inherited held, say) is killed, and the test fails instead of hanging."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child did not finish within {timeout} s")


def test_a_forked_worker_writes_its_own_rows_and_not_its_parents(database: str) -> None:
    log = PredictionLog(database, flush_interval=600, batch_size=10_000)
    log.record("parent-before", "v1", [row(0)], [ANSWER])  # the parent's writer runs, its queue holds a row
    pid = os.fork()
    if pid == 0:  # the child: a gunicorn worker forked from a master that had a log
        code = 1
        try:
            for i in range(50):
                log.record(f"child-{i}", "v1", [row(i)], [ANSWER])
            code = 0 if log.close(60) and log.written == 50 else 1
        finally:
            os._exit(code)
    assert wait_child(pid, timeout=60) == 0
    log.record("parent-after", "v1", [row(1)], [ANSWER])
    assert log.close(60) and log.written == 2
    found = Counter(r.request_id.split("-")[0] for r in logged(database))
    assert found == {"child": 50, "parent": 2}


# ---- an unreachable database ----------------------------------------------------------------


def drive_dead_log(database: str) -> PredictionLog:
    """Record 30 one-row requests into a log whose database cannot be reached, then close it."""
    log = PredictionLog(database, queue_size=10, retry_interval=0.05, flush_interval=0.05)
    results = [log.record(f"r{i}", "v1", [row(i)], [ANSWER]) for i in range(30)]
    assert results[:10] == [True] * 10 and not any(results[10:])  # beyond the queue: dropped at once
    assert not log.flush(0.3)  # nothing can be written
    assert log.close(0.5)  # gives up waiting, and counts the rest
    return log


def unreachable_databases(tmp_path: Path) -> dict[str, str]:
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    return {
        "closed-port": f"postgresql://postgres:secret-pw@127.0.0.1:{free_port()}/predictions",
        "sqlite-under-a-file": str(a_file / "predictions.sqlite3"),
        "not-a-database": str(a_file),
    }


@pytest.mark.parametrize("kind", ["closed-port", "sqlite-under-a-file", "not-a-database"])
def test_an_unreachable_database_never_fails_the_caller_counts_drops_and_warns_once(
    kind: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    database = unreachable_databases(tmp_path)[kind]
    log = drive_dead_log(database)
    assert (log.written, log.dropped) == (0, 30)
    assert (log.dropped_by_reason[QUEUE_FULL], log.dropped_by_reason[DATABASE]) == (20, 10)
    outage = warnings_of(caplog, "database unavailable")
    assert len(outage) == 1, outage
    assert "secret-pw" not in caplog.text
    print(f"\n[{kind}] {outage[0]}")


def test_a_sqlite_file_in_a_read_only_folder_as_an_unprivileged_process(tmp_path: Path) -> None:
    from tests.test_versions_live import unprivileged_prefix  # root ignores write bits: run as nobody

    prefix = unprivileged_prefix()
    if prefix is None:
        pytest.skip("running as root without setpriv/nobody: cannot make a folder read-only")
    folder = Path(tempfile.mkdtemp(prefix="mldeploy-readonly-log-"))
    try:
        folder.chmod(0o555)
        script = (
            "import json, logging, sys; logging.basicConfig(level=logging.WARNING); "
            "from tests.test_prediction_log import drive_dead_log; log = drive_dead_log(sys.argv[1]); "
            "print(json.dumps([log.written, log.dropped]))"
        )
        done = subprocess.run(
            [*prefix, sys.executable, "-c", script, str(folder / "predictions.sqlite3")],
            cwd=REPO,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0 and "drive_dead_log" not in done.stderr:
            pytest.skip(f"the interpreter cannot run as an unprivileged user here: {done.stderr.strip()[-300:]}")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout) == [0, 30]
        outage = [line for line in done.stderr.splitlines() if "database unavailable" in line]
        assert len(outage) == 1 and "unable to open database file" in outage[0], done.stderr
        assert not any(folder.iterdir())
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_postgres_going_away_and_coming_back_loses_nothing_within_the_queue(
    postgres: PostgresServer, postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    log = PredictionLog(postgres_url, retry_interval=0.1, flush_interval=0.05)
    for i in range(10):
        log.record(f"before-{i}", "v1", [row(i)], [ANSWER])
    assert log.flush(30) and log.written == 10
    postgres.stop()
    try:
        for i in range(10):
            assert log.record(f"during-{i}", "v1", [row(i)], [ANSWER])  # queued, not failed
        wait_for(lambda: warnings_of(caplog, "database unavailable"))
        assert not log.flush(0.3)
    finally:
        postgres.start_again()
    assert log.flush(60)
    assert log.close(30) and (log.written, log.dropped) == (20, 0)
    assert len(logged(postgres_url)) == 20
    assert len(warnings_of(caplog, "database unavailable")) == 1
    assert len(warnings_of(caplog, "writing again")) == 1


def test_the_postgres_fixture_skips_without_the_binaries_but_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.postgres as helper

    monkeypatch.setattr(helper, "BIN_GLOB", "/nonexistent/postgresql/*/bin")
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception, match="apt-get install postgresql"):
        helper.require_binaries()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run the PostgreSQL tests"):
        helper.require_binaries()


def test_the_benchmark_prints_its_figures() -> None:
    # Tiny sizes: that it runs and prints, not what it measures (no timing asserts).
    args = [
        sys.executable,
        "bench/prediction_log.py",
        "--calls",
        "300",
        "--batch-calls",
        "5",
        "--no-postgres",
        "--no-served",
    ]
    done = subprocess.run(args, cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    header, sqlite_line = done.stdout.splitlines()[1:3]
    assert "writer rows/s" in header and sqlite_line.startswith("sqlite") and sqlite_line.count("µs") == 4
