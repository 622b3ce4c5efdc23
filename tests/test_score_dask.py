"""``python -m mldeploy score --dask``: the same results as local scoring, on a LocalCluster of two
worker processes, with the model loaded once per worker."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

distributed = pytest.importorskip("distributed")  # the optional extra; requirements-dev.txt has it

from mldeploy.cli.exit_codes import EXIT_INVALID_INPUT  # noqa: E402
from mldeploy.cli.main import main  # noqa: E402
from mldeploy.contract import MODEL_VERSION, WARNINGS  # noqa: E402
from mldeploy.scoring.cluster import ERROR_PARTS, LOCAL_WORKERS, dask_client  # noqa: E402
from modeler.batch import pinned_loads  # noqa: E402
from modeler.data import IRIS_FEATURES  # noqa: E402
from modeler.modeler import Modeler  # noqa: E402
from tests.support import run_cli  # noqa: E402

ROWS = 1_000_000
# Bad cells spread over the file, so that they land in different partitions.
BAD = {
    17: ("sepal_width", ""),
    250_001: ("petal_length", "abc"),
    600_000: ("petal_width", "inf"),
    999_999: ("sepal_length", "nan"),
}
# Values outside the training ranges: scored, with the field named in the row's Warnings.
OUT_OF_RANGE = {42: ("petal_length", "25.0"), 700_000: ("sepal_width", "0.5")}


@pytest.fixture(scope="module")
def million(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated CSV of a million rows (an id column, four features, a few bad cells)."""
    rng = np.random.default_rng(3)
    low, high = np.array([4.3, 2.0, 1.0, 0.1]), np.array([7.9, 4.4, 6.9, 2.5])
    frame = pd.DataFrame(np.round(rng.uniform(low, high, size=(ROWS, 4)), 2), columns=list(IRIS_FEATURES))
    frame.insert(0, "id", np.arange(ROWS))
    lines = frame.to_csv(index=False).split("\n")
    for row, (field, text) in {**BAD, **OUT_OF_RANGE}.items():  # line 0 is the header
        cells = lines[row + 1].split(",")
        cells[frame.columns.get_loc(field)] = text
        lines[row + 1] = ",".join(cells)
    path = tmp_path_factory.mktemp("data") / "million.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.Client]:
    """The LocalCluster `score --dask` starts by itself (two single-threaded worker processes on
    127.0.0.1), here kept for the module and closed cleanly."""
    with dask_client(None) as client:
        yield client


def score_process(models: Path, *args: str) -> subprocess.CompletedProcess:
    return run_cli(models, "score", *args, timeout=600)


def as_text(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def parts_of(folder: Path) -> pd.DataFrame:
    parts = sorted(folder.glob("part-*.csv"))
    return pd.concat([as_text(p) for p in parts], ignore_index=True)


def joined_parts(folder: Path) -> bytes:
    """The parts' bytes in order, as one file: the first part's header, then every part's rows."""
    parts = [p.read_bytes() for p in sorted(folder.glob("part-*.csv"))]
    return parts[0] + b"".join(p.split(b"\n", 1)[1] for p in parts[1:])


def test_dask_scores_a_million_rows_exactly_as_local_scoring(
    models: Path, million: Path, cluster: distributed.Client, tmp_path: Path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("MLDEPLOY_MODEL_DIR", str(models))
    local_out = tmp_path / "local.csv"
    assert main(["score", str(million), "-o", str(local_out), "--allow-errors"]) == 0
    capsys.readouterr()

    folder = tmp_path / "on-dask"
    run = score_process(
        models, str(million), "-o", str(folder), "--chunk-rows", "200000", "--dask", cluster.scheduler.address
    )
    assert run.returncode == EXIT_INVALID_INPUT, run.stderr  # four rows failed, as they should
    assert f"scored {ROWS - len(BAD):,} of {ROWS:,} rows" in run.stdout and "on Dask (2 workers)" in run.stdout

    # Partitioned output: several parts, together byte for byte the local file.
    assert len(list(folder.glob("part-*.csv"))) >= 4
    assert joined_parts(folder) == local_out.read_bytes()
    # Each row carries its model version and its out-of-range fields (the bytes above: on Dask too).
    added = pd.read_csv(local_out, usecols=["id", MODEL_VERSION, WARNINGS], dtype=str, keep_default_na=False)
    assert set(added[MODEL_VERSION]) == {Modeler(models).ensure_ready().version}
    flagged = added[added[WARNINGS] != ""]
    assert flagged.values.tolist() == [[str(row), added[MODEL_VERSION][0], f] for row, (f, _) in OUT_OF_RANGE.items()]
    # One errors file, rows numbered as in the input, identical to the local one.
    errors_file = tmp_path / "on-dask.errors.csv"
    assert errors_file.read_bytes() == (tmp_path / "local.errors.csv").read_bytes()
    assert [int(r) for r in as_text(errors_file)["row"]] == sorted(BAD)
    assert not (folder / ERROR_PARTS).exists()
    # Each worker process loaded the model exactly once for all its partitions.
    assert sorted(cluster.run(pinned_loads).values()) == [1, 1]


def test_dask_without_an_address_runs_a_local_cluster(models: Path, tmp_path: Path) -> None:
    source = tmp_path / "few.csv"
    source.write_text(
        "id,sepal_length,sepal_width,petal_length,petal_width\na,5.0,3.2,1.5,0.3\nb,6.5,x,5.5,2.0\nc,6.5,3.0,5.5,2.0\n",
        encoding="utf-8",
    )
    run = score_process(models, str(source), "--dask")
    assert run.returncode == EXIT_INVALID_INPUT, run.stderr
    assert f"on Dask ({LOCAL_WORKERS} workers)" in run.stdout
    assert parts_of(tmp_path / "few.scored")[["id", "Class"]].values.tolist() == [["a", "setosa"], ["c", "virginica"]]
    assert as_text(tmp_path / "few.scored.errors.csv").values.tolist() == [["1", "sepal_width", "not a number", "x"]]
    assert "Traceback" not in run.stderr
