"""How one request's rows are kept in the log: packed into two values, its inputs and its
outputs, so that logging a 10,000-row batch costs about what answering it costs a tenth of.

Each value is a tag byte, then:

- ``J``: JSON. Inputs as ``{"columns": [names], "data": [[values], ...]}``, as
  ``{"columns": [names], "by_column": [[column values], ...]}`` (a batch validated column by
  column, a Pipeline's text columns among them: each column one list, no list per row), or a
  list of row objects; outputs as a list of per-row answers.
- ``N`` (inputs): a JSON header ``{"columns", "dtype", "shape"}``, a newline, then the validated
  rows' numeric array as raw bytes (C order): no number is formatted on the write path. Floats
  that are all float32 values exactly (an FP32 tensor's) are written as float32: half the
  bytes, the same numbers read back.
- ``T`` (outputs): a JSON header ``{"answers": {entry: answer}, "dtype"}``, a newline, then one
  entry index per row as raw bytes: for predictors that answer from a fixed table (a tree's
  leaves), each distinct answer is written once per request.
- ``C`` (outputs): a batch answered by arrays (:class:`mldeploy.api.answers.AnswerColumns`): a
  JSON header ``{"labels", "keys", "dtype", "shape"}``, a newline, then the probabilities (or a
  regressor's values) as raw bytes. The rows are built back by the code that built the answer's
  (:func:`mldeploy.api.answers.rows_of_columns`): no dict per row on the write path, where
  building and writing them cost the writer more than the model cost for a 1,000-row Pipeline
  batch.

:func:`unpack_inputs` and :func:`unpack_outputs` give back one dict (and one answer) per row.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import orjson

from mldeploy.api.answers import AnswerColumns, rows_of_columns
from modeler.typed_columns import TypedColumns

JSON, ARRAY, TABLE, ANSWER_COLUMNS = b"J", b"N", b"T", b"C"
COLUMNS, DATA, BY_COLUMN, DTYPE, SHAPE, ANSWERS = "columns", "data", "by_column", "dtype", "shape", "answers"
LABELS, KEYS = "labels", "keys"
# numpy scalars from a model, class labels that are not strings (int classes): written, not refused.
JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
_NUMERIC = frozenset("fiub")
# Batches of at least this many values are written as float32 where that is exact: for a
# 10,000-row Iris batch that is 160 KB less to write; below it, the check costs more than it saves.
NARROW_FROM = 1024


def dumps(value: object) -> bytes:
    """``value`` as JSON (numpy values included; anything else unknown as its text)."""
    return orjson.dumps(value, option=JSON_OPTIONS, default=str)


def pack_json(value: object) -> bytes:
    """Any JSON-able value, tagged ``J``."""
    return JSON + dumps(value)


def _with_header(tag: bytes, header: dict, array: np.ndarray) -> bytes:
    return b"".join(
        (tag, orjson.dumps(header, option=orjson.OPT_NON_STR_KEYS), b"\n", np.ascontiguousarray(array).tobytes())
    )


def _split(blob: bytes) -> tuple[dict, bytes]:
    header, raw = bytes(blob[1:]).split(b"\n", 1)
    return orjson.loads(header), raw


def _narrowed(rows: np.ndarray) -> np.ndarray:
    """``rows`` as float32 when every value is one exactly (an Open Inference FP32 tensor's are,
    and so are small whole numbers), else as they are: half the bytes to write, the same values
    read back. A NaN, or a value float32 cannot hold, keeps the float64 array."""
    if rows.dtype != np.float64 or rows.size < NARROW_FROM:
        return rows
    with np.errstate(over="ignore"):  # a value beyond float32's range casts to inf: not equal
        narrow = rows.astype(np.float32)
    return narrow if np.array_equal(narrow, rows) else rows


def pack_inputs(features: Sequence[str], rows: object) -> bytes:
    """Validated rows in feature order: a numeric 2-D array as raw bytes (float32 where that
    holds every value exactly), anything else as JSON."""
    if type(rows) is list and type(features) is tuple:  # an Inference's rows as Python values
        return _pack_rows(features, rows)
    columns = list(features)
    if isinstance(rows, np.ndarray) and rows.ndim == 2 and rows.dtype.kind in _NUMERIC:
        rows = _narrowed(rows)
        return _with_header(ARRAY, {COLUMNS: columns, DTYPE: rows.dtype.str, SHAPE: list(rows.shape)}, rows)
    if isinstance(rows, TypedColumns):
        # A typed batch validated column by column: each column's values as the row path gives
        # them (Python values, None for a null), one list per column. Built row by row, the
        # lists cost the writer three times as long for a 1,000-row Pipeline batch, all of it
        # holding the interpreter's lock that the requests being answered wait for.
        return pack_json({COLUMNS: columns, BY_COLUMN: [rows.column(j) for j in range(len(rows.frame_columns))]})
    if isinstance(rows, np.ndarray):
        rows = rows.tolist()  # object arrays (text fields): plain values, which orjson writes
    return pack_json({COLUMNS: columns, DATA: rows})


def _pack_rows(features: tuple[str, ...], rows: list) -> bytes:
    """``pack_json({COLUMNS: features, DATA: rows})``, the text before the rows made once per
    feature list: the packed form of most records (a single row's Python values)."""
    prefix = _ROWS_PREFIXES.get(features)
    if prefix is None:
        whole = pack_json({COLUMNS: list(features), DATA: None})  # J{"columns":[...],"data":null}
        prefix = _ROWS_PREFIXES[features] = whole[: -len(b"null}")]
    return b"".join((prefix, dumps(rows), b"}"))


# The packed rows' text before their values, by feature names.
_ROWS_PREFIXES: dict[tuple[str, ...], bytes] = {}


def pack_table_outputs(entries: np.ndarray, answer_json: Sequence[object]) -> bytes:
    """One entry index per row, and each distinct entry's answer (``answer_json[entry]``: the
    answer's JSON, e.g. an ``orjson.Fragment``)."""
    if entries.size and entries.dtype.kind in "iu" and int(entries.min()) >= 0:
        # Entries index a table: counting them finds the used ones in a tenth of a sort's time.
        used = np.flatnonzero(np.bincount(entries))
    else:
        used = np.unique(entries)
    if used.size and int(used[-1]) < 1 << 16 and int(used[0]) >= 0:
        entries = entries.astype(np.uint16)
    answers = {int(entry): answer_json[entry] for entry in used.tolist()}
    return _with_header(TABLE, {ANSWERS: answers, DTYPE: entries.dtype.str}, entries)


def pack_answer_columns(columns: AnswerColumns) -> bytes:
    """A batch's answers as columns: the labels and keys as JSON, the numbers as raw bytes."""
    numbers = columns.values if columns.values is not None else columns.probabilities
    header = {LABELS: columns.labels, KEYS: columns.keys}
    if numbers is None:
        return _with_header(ANSWER_COLUMNS, {**header, DTYPE: None, SHAPE: None}, np.empty(0))
    numbers = np.asarray(numbers, dtype=np.float64)
    return _with_header(ANSWER_COLUMNS, {**header, DTYPE: numbers.dtype.str, SHAPE: list(numbers.shape)}, numbers)


def _unpack_answer_columns(blob: bytes) -> list[dict]:
    header, raw = _split(blob)
    numbers = None
    if header[DTYPE] is not None:
        numbers = np.frombuffer(raw, dtype=np.dtype(header[DTYPE])).reshape(header[SHAPE])
    if header[LABELS] is None:
        return rows_of_columns(AnswerColumns(values=numbers))
    return rows_of_columns(AnswerColumns(header[LABELS], header[KEYS], numbers))


def unpack_inputs(blob: bytes) -> list[dict]:
    """Each row's inputs as ``{field: value}``."""
    if blob[:1] == ARRAY:
        header, raw = _split(blob)
        data = np.frombuffer(raw, dtype=np.dtype(header[DTYPE])).reshape(header[SHAPE]).tolist()
        columns = header[COLUMNS]
    else:
        value = orjson.loads(bytes(blob[1:]))
        if not isinstance(value, dict):
            return value  # a list of row objects
        columns = value[COLUMNS]
        data = zip(*value[BY_COLUMN], strict=True) if BY_COLUMN in value else value[DATA]
    return [dict(zip(columns, row, strict=True)) for row in data]


def unpack_outputs(blob: bytes) -> list:
    """Each row's answer, as it was answered."""
    if blob[:1] == TABLE:
        header, raw = _split(blob)
        answers = {int(entry): answer for entry, answer in header[ANSWERS].items()}
        return [answers[entry] for entry in np.frombuffer(raw, dtype=np.dtype(header[DTYPE])).tolist()]
    if blob[:1] == ANSWER_COLUMNS:
        return _unpack_answer_columns(blob)
    return orjson.loads(bytes(blob[1:]))
