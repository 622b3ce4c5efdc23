"""bench/soak.py's parts (the run itself is not in CI): each kind of request gets the status the
soak expects from the real app, the verdict fails on what it must, and /proc is read right."""

from __future__ import annotations

import importlib
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from mldeploy.http.app import create_app
from tests.support import REPO

sys.path.insert(0, str(REPO / "bench"))
soak = importlib.import_module("soak")


def test_every_kind_gets_the_status_the_soak_expects(models: Path) -> None:
    app = create_app(
        {
            "MODEL_DIR": str(models),
            "WARMUP": False,
            "TESTING": False,
            "MAX_CONTENT_LENGTH": soak.MAX_CONTENT_LENGTH,
            "MAX_BATCH_ROWS": soak.MAX_BATCH_ROWS,
        }
    )
    client = app.test_client()
    rng = random.Random(0)
    for kind in soak.KINDS:
        for _ in range(3):
            method, path, body, headers = kind.make(rng)
            res = client.open(path, method=method, data=body, headers=headers)
            assert res.status_code == kind.expect, (kind.name, res.get_data()[:200])
    # The brief's mix: valid rows and batches, each kind of bad body, V2 both ways.
    assert {k.expect for k in soak.KINDS} == {200, 400, 404, 405, 413, 415}
    assert sum(k.weight for k in soak.KINDS if k.expect == 200) * 2 >= sum(k.weight for k in soak.KINDS) * 0.9


def samples(*rows: tuple[float, dict[int, tuple[int, int]]]) -> list:
    return [soak.Sample(at, workers) for at, workers in rows]


def tally(**statuses: int) -> object:
    t = soak.Tally()
    for status, n in statuses.items():
        for _ in range(n):
            t.add("valid row", int(status.lstrip("s")), None, 1.0)
    return t


EXPECTED = {k.name: k.expect for k in soak.KINDS}
STEADY = samples((0, {1: (100_000, 10)}), (60, {1: (150_000, 12)}), (70, {1: (151_000, 12)}), (80, {1: (155_000, 13)}))


def test_a_steady_run_passes() -> None:
    verdict = soak.judge(STEADY, 60, tally(s200=5), 0.10, EXPECTED)
    assert verdict.ok, verdict.reasons
    assert verdict.rows[0]["rss0"] == pytest.approx(150_000 / 1024)  # the warm-up is not the reference


@pytest.mark.parametrize(
    ("run", "answers", "reason"),
    [
        (samples((60, {1: (100_000, 10)}), (70, {1: (111_000, 10)})), tally(s200=5), "RSS moved"),
        (samples((60, {1: (100_000, 10)}), (70, {1: (100_000, 12)})), tally(s200=5), "descriptors grew"),
        (samples((60, {1: (100_000, 10)}), (70, {2: (100_000, 10)})), tally(s200=5), "replaced"),
        (STEADY, tally(s200=5, s500=1), "5xx"),
        (STEADY, tally(s200=5, s404=1), "another status"),
        (samples((60, {1: (100_000, 10)})), tally(s200=5), "run longer"),
    ],
)
def test_the_verdict_fails_on_each_criterion(run, answers, reason: str) -> None:
    verdict = soak.judge(run, 60, answers, 0.10, EXPECTED)
    assert not verdict.ok and any(reason in r for r in verdict.reasons), verdict.reasons


def test_workers_memory_and_descriptors_come_from_proc() -> None:
    code = "import sys, time; f = [open(sys.executable, 'rb') for _ in range(5)]; print(flush=True); time.sleep(60)"
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        child.stdout.readline()
        assert child.pid in soak.children(os.getpid())
        assert soak.open_fds(child.pid) >= 3 + 5
        assert soak.rss_kib(child.pid) > 1024
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


def test_results_go_under_one_soak_heading(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# Benchmark results\n\n| a | b |\n")
    soak.append_results("### run 1\n", results)
    soak.append_results("### run 2\n", results)
    text = results.read_text()
    assert text.count(soak.SOAK_HEADING + "\n") == 1 and text.index("run 1") < text.index("run 2")
    assert text.startswith("# Benchmark results\n\n| a | b |\n")
