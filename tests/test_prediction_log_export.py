"""``python -m mldeploy log export``: the prediction log as CSV or Parquet, on both backends.

Values are read back from the written file and compared with what was recorded; the selection
options, the default database, the errors and the atomic write are checked through the command.
"""

from __future__ import annotations

import csv
import math
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mldeploy.cli import exit_codes
from mldeploy.contract import CLASS, PREDICTION, PROBABILITIES
from mldeploy.monitoring import DEFAULT_FILE, PredictionLog, open_store
from mldeploy.monitoring.export import META_COLUMNS
from mldeploy.monitoring.packing import pack_json
from mldeploy.monitoring.timespec import parse_duration
from modeler.atomic import TEMP_PREFIX
from tests.support import free_port, run_cli
from tests.test_cli import run
from tests.test_prediction_log import ANSWER, logged, row

pytest_plugins = ["tests.postgres"]

# Inputs of every JSON kind, with values that a careless writer would round or mangle.
MIXED_ROWS = [
    {"sepal_length": 0.1 + 0.2, "count": 3, "colour": 'red, "dark"\nish', "fresh": True, "time": 1.5},
    {"sepal_length": 1e-300, "count": -7, "colour": "blue", "fresh": False, "time": 2.5},
]
MIXED_ANSWERS = [
    {CLASS: "setosa", PROBABILITIES: {"setosa": 1 / 3, "versicolor": 2 / 3, "virginica": 0.0}},
    {CLASS: "virginica", PROBABILITIES: {"setosa": 0.0, "versicolor": 0.0, "virginica": 1.0}},
]
REGRESSION_ROW = {"sepal_length": 6.25, "count": 1, "colour": "green", "fresh": True, "time": 3.5}
# The columns these make: an input named like a meta column gets its group as a prefix.
COLUMNS = [
    *META_COLUMNS,
    "sepal_length",
    "count",
    "colour",
    "fresh",
    "input.time",
    CLASS,
    "setosa",
    "versicolor",
    "virginica",
    PREDICTION,
]


def fill_mixed_log(database: str) -> None:
    with PredictionLog(database, model="iris") as log:
        log.record("req-a", "v1", MIXED_ROWS, MIXED_ANSWERS)
        log.record("req-b", "v2", [REGRESSION_ROW], [{PREDICTION: 42.125}], model="houses")


def expected_cells(database: str) -> list[dict]:
    """What each exported row should hold, from the log itself."""
    cells = []
    for r in logged(database):
        cell = {"time": r.time, "request_id": r.request_id, "row": r.row, "model": r.model, "version": r.version}
        cell.update({("input.time" if k == "time" else k): v for k, v in r.inputs.items()})
        cell.update(r.outputs.get(PROBABILITIES, {}))
        cell.update({k: v for k, v in r.outputs.items() if k != PROBABILITIES})
        cells.append({c: cell.get(c) for c in COLUMNS})
    return cells


def read_csv_cell(column: str, text: str, like: object) -> object:
    """A CSV cell as the type of the recorded value ``like`` (CSV itself carries only text)."""
    if text == "":
        return None
    if column == "time":
        return datetime.fromisoformat(text)
    if isinstance(like, bool):
        return {"True": True, "False": False}[text]
    if isinstance(like, int):
        return int(text)
    if isinstance(like, float):
        return float(text)
    return text


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_export_round_trips_every_value(
    log_database: str, tmp_path: Path, suffix: str, capsys: pytest.CaptureFixture
) -> None:
    fill_mixed_log(log_database)
    out = tmp_path / f"log{suffix}"
    code, stdout, stderr = run(capsys, "log", "export", "--database", log_database, "-o", str(out))
    assert code == exit_codes.EXIT_OK, stderr
    assert stdout == "" and stderr.startswith("wrote 3 logged prediction(s)")
    expected = expected_cells(log_database)
    if suffix == ".csv":
        with out.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            found = [
                {c: read_csv_cell(c, text, want[c]) for c, text in zip(header, line, strict=True)}
                for line, want in zip(reader, expected, strict=True)
            ]
    else:
        table = pq.read_table(out)
        header = table.column_names
        found = [
            {c: (None if isinstance(v, float) and math.isnan(v) else v) for c, v in r.items()}
            for r in table.to_pylist()
        ]
        types = {f.name: str(f.type) for f in table.schema}
        assert types["time"] == "timestamp[us, tz=UTC]" and types["count"] == "int64" and types["fresh"] == "bool"
        assert types["sepal_length"] == types["setosa"] == types[PREDICTION] == "double"
    assert header == COLUMNS
    assert found == expected
    assert found[0]["sepal_length"] == 0.1 + 0.2 and found[1]["sepal_length"] == 1e-300  # not rounded
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_since_version_and_model_select_rows(log_database: str, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    now = time.time()
    rows, answers = pack_json([row(0)]), pack_json([ANSWER])
    store = open_store(log_database)
    store.insert(
        [
            ("two-days-ago", "iris", "v1", now - 2 * 86400, 1, rows, answers),
            ("two-hours-ago", "iris", "v1", now - 7200, 1, rows, answers),
            ("ten-minutes-ago", "iris", "v2", now - 600, 1, rows, answers),
            ("just-now", "other", "v2", now - 1, 1, rows, answers),
        ]
    )
    store.close()

    def exported(*options: str) -> list[str]:
        out = tmp_path / "selection.csv"
        code, _, stderr = run(capsys, "log", "export", "--database", log_database, *options, "-o", str(out))
        assert code == exit_codes.EXIT_OK, stderr
        with out.open(newline="") as handle:
            return [r["request_id"] for r in csv.DictReader(handle)]

    everything = ["two-days-ago", "two-hours-ago", "ten-minutes-ago", "just-now"]
    assert exported() == everything
    assert exported("--since", "1h") == ["ten-minutes-ago", "just-now"]
    assert exported("--since", "30m", "--version", "v2", "--model", "iris") == ["ten-minutes-ago"]
    yesterday = datetime.fromtimestamp(now - 86400, UTC)
    assert exported("--since", yesterday.replace(tzinfo=None).isoformat()) == everything[1:]  # no zone: UTC
    two_hours_east = yesterday.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert exported("--since", two_hours_east) == everything[1:]
    assert exported("--version", "v1") == everything[:2]
    assert exported("--since", (datetime.now(UTC) + timedelta(hours=1)).isoformat()) == []


def test_an_empty_log_exports_the_header(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    database = tmp_path / "empty.sqlite3"
    open_store(database).close()
    out = tmp_path / "empty.csv"
    code, _, stderr = run(capsys, "log", "export", "--database", str(database), "-o", str(out))
    assert code == exit_codes.EXIT_OK and "wrote 0" in stderr
    assert out.read_text().strip() == ",".join(META_COLUMNS)


def test_the_default_database_is_the_model_directorys_file(tmp_path: Path) -> None:
    # A real `python -m mldeploy` process, configured as a user configures it.
    models = tmp_path / "models"
    models.mkdir()
    fill_mixed_log(str(models / DEFAULT_FILE))
    out = tmp_path / "default.parquet"
    done = run_cli(models, "log", "export", "-o", str(out), "--version", "v1")
    assert done.returncode == exit_codes.EXIT_OK, done.stderr
    assert f"from {models / DEFAULT_FILE} to {out}" in done.stderr
    assert pq.read_table(out).column("request_id").to_pylist() == ["req-a", "req-a"]


def test_mldeploy_log_database_names_the_database(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    elsewhere = tmp_path / "elsewhere.sqlite3"
    fill_mixed_log(str(elsewhere))
    monkeypatch.setenv("MLDEPLOY_MODEL_DIR", str(tmp_path / "no-models-here"))
    monkeypatch.setenv("MLDEPLOY_LOG_DATABASE", str(elsewhere))
    code, _, stderr = run(capsys, "log", "export", "-o", str(tmp_path / "out.csv"))
    assert code == exit_codes.EXIT_OK and "wrote 3" in stderr and str(elsewhere) in stderr


def test_errors_name_the_problem_with_the_documented_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    missing = tmp_path / "missing.sqlite3"
    out = str(tmp_path / "out.csv")
    code, _, err = run(capsys, "log", "export", "--database", str(missing), "-o", out)
    assert (
        code == exit_codes.EXIT_ERROR
        and err.startswith("error: cannot open the prediction log")
        and "no such file" in err
    )
    assert not missing.exists()  # reading never creates a database
    url = f"postgresql://postgres:hunter2@127.0.0.1:{free_port()}/predictions"
    code, _, err = run(capsys, "log", "export", "--database", url, "-o", out)
    assert code == exit_codes.EXIT_ERROR and "Connection refused" in err
    assert "hunter2" not in err and "postgres:***@127.0.0.1" in err
    code, _, err = run(capsys, "log", "export", "--database", "mysql://db/x", "-o", out)
    assert code == exit_codes.EXIT_ERROR and "unsupported prediction log database" in err
    code, _, err = run(capsys, "log", "export", "--database", str(missing), "-o", str(tmp_path / "out.xlsx"))
    assert code == exit_codes.EXIT_USAGE and "cannot tell the format" in err
    code, _, err = run(capsys, "log", "export", "--since", "yesterday", "-o", out)
    assert code == exit_codes.EXIT_USAGE and "not a time or duration: 'yesterday'" in err
    code, _, err = run(capsys, "log")
    assert code == exit_codes.EXIT_USAGE and "ACTION" in err
    not_a_log = tmp_path / "not-a-log.sqlite3"
    not_a_log.write_text("hello")
    code, _, err = run(capsys, "log", "export", "--database", str(not_a_log), "-o", out)
    assert code == exit_codes.EXIT_ERROR and "file is not a database" in err
    assert not (tmp_path / "out.csv").exists()


def test_a_failed_export_leaves_the_previous_file_and_no_temporary_one(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    database = str(tmp_path / "log.sqlite3")
    fill_mixed_log(database)
    out = tmp_path / "exports" / "log.csv"
    out.parent.mkdir()
    out.write_text("the previous export\n")
    # A row whose JSON is damaged, after good ones: the export fails.
    store = open_store(database)
    store._conn.execute(
        "INSERT INTO predictions VALUES ('damaged', 'iris', 'v1', ?, 1, ?, ?)",
        (time.time() + 1, b'J{"sepal_length": ', pack_json([{}])),
    )
    store.close()
    code, _, err = run(capsys, "log", "export", "--database", database, "-o", str(out))
    assert code == exit_codes.EXIT_ERROR and err.startswith("error:")
    assert out.read_text() == "the previous export\n"  # untouched
    assert [p.name for p in out.parent.iterdir()] == ["log.csv"]  # no temporary file left
    store = open_store(database)
    store._conn.execute("DELETE FROM predictions WHERE request_id = 'damaged'")
    store.close()
    code, _, _ = run(capsys, "log", "export", "--database", database, "-o", str(out))
    assert code == exit_codes.EXIT_OK and out.read_text().startswith(",".join(META_COLUMNS))
    assert [p.name for p in out.parent.iterdir()] == ["log.csv"]


@pytest.mark.parametrize(
    ("text", "seconds"), [("90s", 90), ("30m", 1800), ("1.5h", 5400), ("7d", 604800), ("2w", 1209600), ("45", 45)]
)
def test_durations_read_as_people_write_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["0", "-1m", "1y", "soon", "inf", "nan"])
def test_what_is_no_duration_is_refused_naming_it(text: str) -> None:
    with pytest.raises(ValueError, match=repr(text).replace("\\", "\\\\")):
        parse_duration(text)


def test_log_settings_out_of_range_are_refused_at_construction(tmp_path: Path) -> None:
    database = tmp_path / "log.sqlite3"
    for bad in ({"sample_rate": 1.5}, {"sample_rate": -0.1}, {"queue_size": 0}, {"max_rows": 0}, {"max_age": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            PredictionLog(database, **bad)
    assert PredictionLog(database, max_age=timedelta(days=2)).max_age == 172800
    assert not database.exists()  # nothing is opened before the first record
