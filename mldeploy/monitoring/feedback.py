"""Ground truth: what a logged prediction should have been, posted later by the client.

``POST /feedback`` takes ``{"request_id": ..., "actual": ..., "row": i}`` (``row`` may be left out
for a request of one row), or a list of them. Each names a row of the prediction log; the answer
is checked against the version that gave it (one of its classes for a classifier, a finite
number for a regressor) and stored in the log's ``feedback`` table, one per row: a second
feedback for the same row replaces the first. A list is all or nothing.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import orjson

from mldeploy.contract import CLASS, PREDICTION
from mldeploy.monitoring.errors import NotLogged
from mldeploy.monitoring.store import Store
from mldeploy.monitoring.windows import LOOKUP_CHUNK, answers_of
from modeler.errors import FieldError, InvalidInput, TooManyRows

REQUEST_ID, ROW, ACTUAL = "request_id", "row", "actual"
KEYS = (REQUEST_ID, ROW, ACTUAL)
# The ids the service hands out and echoes (mldeploy.http.request_context): nothing else was logged.
# Searched as JSON Schema searches the documented ^...$ pattern, so every id the document allows is taken.
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
MAX_ROW = 2**31 - 1  # the log's row_index is a 32-bit integer in PostgreSQL
CLASSIFICATION, REGRESSION = "classification", "regression"

UPSERT = (
    "INSERT INTO feedback (request_id, row_index, actual, time) VALUES ({p}, {p}, {p}, {p}) "
    "ON CONFLICT (request_id, row_index) DO UPDATE SET actual = excluded.actual, time = excluded.time"
)


@dataclass(frozen=True)
class FeedbackItem:
    """One posted label: the request and row it is for (``row`` None: the request's only row)."""

    request_id: str
    row: int | None
    actual: object
    position: int | None  # its index in a posted list, None for a single object (error rows)


@dataclass(frozen=True)
class VersionFacts:
    """What a version accepts as ground truth: its task and, for a classifier, its classes."""

    task: str
    classes: tuple | None = None


@dataclass(frozen=True)
class Logged:
    """A logged row that feedback names: the version that answered it and what it answered."""

    version: str
    predicted: object
    task: str


def parse_feedback(body: object, max_items: int) -> list[FeedbackItem]:
    """The items of a ``POST /feedback`` body; InvalidInput naming each bad field (TooManyRows
    beyond ``max_items``)."""
    single = isinstance(body, dict)
    if not single and not (isinstance(body, list) and body):
        raise InvalidInput([FieldError(None, None, "send an object {request_id, actual, row} or a non-empty list")])
    entries = [body] if single else body
    if len(entries) > max_items:
        raise TooManyRows(
            [FieldError(None, None, f"{len(entries)} items, at most {max_items} (MLDEPLOY_MAX_BATCH_ROWS)")],
            "Too many feedback items",
        )
    items, errors = [], []
    for index, entry in enumerate(entries):
        position = None if single else index
        found = _item(entry, position, errors)
        if found is not None:
            items.append(found)
    if errors:
        raise InvalidInput(errors)
    return items


def _item(entry: object, position: int | None, errors: list[FieldError]) -> FeedbackItem | None:
    if not isinstance(entry, dict):
        errors.append(FieldError(position, None, "must be an object {request_id, actual, row}"))
        return None
    before = len(errors)
    errors.extend(FieldError(position, str(key), "unknown") for key in entry if key not in KEYS)
    request_id, row, actual = entry.get(REQUEST_ID), entry.get(ROW), entry.get(ACTUAL)
    if isinstance(row, float) and row.is_integer():  # JSON Schema's integer: 3.0 is the integer 3
        row = int(row)
    if REQUEST_ID not in entry:
        errors.append(FieldError(position, REQUEST_ID, "missing"))
    elif not isinstance(request_id, str) or not REQUEST_ID_PATTERN.search(request_id):
        errors.append(FieldError(position, REQUEST_ID, "must be a request id: 1-128 characters of [A-Za-z0-9._:-]"))
    if ROW in entry and (isinstance(row, bool) or not isinstance(row, int) or not 0 <= row <= MAX_ROW):
        errors.append(FieldError(position, ROW, f"must be a row index, an integer from 0 to {MAX_ROW}"))
    if ACTUAL not in entry:
        errors.append(FieldError(position, ACTUAL, "missing"))
    elif not isinstance(actual, (str, int, float)) or (isinstance(actual, float) and not math.isfinite(actual)):
        errors.append(FieldError(position, ACTUAL, "must be a class label or a finite number"))
    if len(errors) > before:
        return None
    return FeedbackItem(request_id, row, actual, position)


def logged_rows(store: Store, request_ids: Iterable[str]) -> dict[str, list[Logged]]:
    """``{request id: [Logged per row]}`` for the requests of ``request_ids`` the log holds."""
    found: dict[str, list[Logged]] = {}
    for request_id, (version, answers) in answers_of(store, list(request_ids)).items():
        rows = []
        for answer in answers:
            task = REGRESSION if PREDICTION in answer and CLASS not in answer else CLASSIFICATION
            rows.append(Logged(version, answer.get(CLASS, answer.get(PREDICTION)), task))
        found[request_id] = rows
    return found


def labelled_keys(store: Store, request_ids: Iterable[str]) -> set[tuple[str, int]]:
    """The ``(request id, row)`` of these requests that already have feedback."""
    keys: set[tuple[str, int]] = set()
    ids = sorted(set(request_ids))
    for chunk in (ids[i : i + LOOKUP_CHUNK] for i in range(0, len(ids), LOOKUP_CHUNK)):
        marks = ", ".join("{p}" for _ in chunk)
        sql = f"SELECT request_id, row_index FROM feedback WHERE request_id IN ({marks})"
        keys.update((request_id, int(row)) for request_id, row in store.query(sql, chunk))
    return keys


def _rows_logged(count: int) -> str:
    return f"{count} row{'s' if count != 1 else ''} logged"


def _resolve(items: list[FeedbackItem], logged: dict[str, list[Logged]]) -> tuple[list, list, list]:
    """Each item's row and logged answer; the unknown ones (404) and the unclear ones (400) apart."""
    resolved, unknown, unclear = [], [], []
    for item in items:
        rows = logged.get(item.request_id)
        if rows is None:
            unknown.append(FieldError(item.position, REQUEST_ID, f"unknown request id {item.request_id!r}"))
            continue
        row = item.row
        if row is None:
            if len(rows) != 1:
                problem = f"missing: request {item.request_id!r} has {_rows_logged(len(rows))}; name one"
                unclear.append(FieldError(item.position, ROW, problem))
                continue
            row = 0
        if row >= len(rows):
            problem = f"request {item.request_id!r} has no row {row} ({_rows_logged(len(rows))})"
            unknown.append(FieldError(item.position, ROW, problem))
            continue
        resolved.append((item, row, rows[row]))
    return resolved, unknown, unclear


def _kind(value: object) -> str:
    # JSON kinds: 1 and 1.0 are one number, but neither is the text "1" nor the boolean true.
    return "boolean" if isinstance(value, bool) else "text" if isinstance(value, str) else "number"


def canonical_actual(actual: object, facts: VersionFacts) -> tuple[object, str | None]:
    """``actual`` as the version's own value (its class, a float), or the problem with it."""
    if facts.task == REGRESSION:
        if isinstance(actual, bool) or not isinstance(actual, (int, float)):
            return None, "must be a number: the model is a regressor"
        return float(actual), None
    if facts.classes is None:  # the version's metadata is gone: any label is taken as it is
        return actual, None
    for cls in facts.classes:
        if _kind(cls) == _kind(actual) and cls == actual:
            return cls, None
    shown = ", ".join(orjson.dumps(c).decode() for c in facts.classes)
    return None, f"not a class the model knows: one of {shown}"


def record_feedback(
    store: Store,
    items: list[FeedbackItem],
    facts: Callable[[str, str], VersionFacts],
    now: float,
    *,
    waits: Sequence[Callable[[], None]] = (),
) -> dict:
    """Check ``items`` against the log and store them (all or none); returns the answer.

    ``facts(version, task)`` says what a version accepts. A request id not in the log yet may
    still be on its way (records reach the database within the writers' flush interval): each of
    ``waits`` in turn is called, and the log read again, before such an id is answered 404. Raises :class:`NotLogged`
    (404) for rows the log does not hold, InvalidInput (400) for labels the version cannot have.
    """
    ids = {item.request_id for item in items}
    logged = logged_rows(store, ids)
    for wait in waits:
        if ids <= logged.keys():
            break
        wait()
        logged.update(logged_rows(store, ids - logged.keys()))
    resolved, unknown, unclear = _resolve(items, logged)
    if unknown:
        first = unknown[0].problem
        more = f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""
        raise NotLogged(f"No such prediction in the log: {first}{more}", unknown)
    errors = list(unclear)
    chosen: dict[tuple[str, int], tuple] = {}
    for item, row, found in resolved:
        actual, problem = canonical_actual(item.actual, facts(found.version, found.task))
        if problem is not None:
            errors.append(FieldError(item.position, ACTUAL, f"{problem} (version {found.version})"))
            continue
        chosen[(item.request_id, row)] = (actual, found)  # a later item for the same row wins
    if errors:
        raise InvalidInput(sorted(errors, key=lambda e: (e.row or 0, e.field or "")))
    replaced = labelled_keys(store, ids) & chosen.keys()
    stamp = store.time_param(now)
    store.write_many(
        UPSERT, [(rid, row, orjson.dumps(actual).decode(), stamp) for (rid, row), (actual, _) in chosen.items()]
    )
    return {
        "recorded": len(chosen),
        "replaced": len(replaced),
        "rows": [
            {"request_id": rid, "row": row, "version": found.version, "actual": actual, "predicted": found.predicted}
            for (rid, row), (actual, found) in chosen.items()
        ],
    }
