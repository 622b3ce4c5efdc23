"""Pinned versions under gunicorn (2 workers): /models/<name>/versions/<v>/predict and
/v2/models/<name>/versions/<v>/infer answer from a saved version that is not current, as it
answers in process; an unknown version is a 404 naming it; the cache of loaded versions is bounded."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from mldeploy.rollout.registry import PinnedCache
from modeler.modeler import Modeler
from tests.support import SEED_ROW, clean_env, free_port, gunicorn_args, running, wait_ready

# A row the two versions answer differently (a depth-1 tree cannot tell versicolor from virginica).
VIRGINICA = {"sepal_length": 6.5, "sepal_width": 3.0, "petal_length": 5.5, "petal_width": 2.0}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, list[str]]]:
    """Three saved versions of iris, the last current; a cache of one pinned version per worker."""
    root = tmp_path_factory.mktemp("pinned")
    models = root / "models"
    versions = [Modeler(models, max_depth=depth).fit().version for depth in (1, 2, None)]
    port = free_port()
    env = clean_env(MLDEPLOY_MODEL_DIR=str(models), MLDEPLOY_VERSION_CACHE="1")
    with running(gunicorn_args(port, 2), Path.cwd(), port, env, log=root / "server.log") as (base, _):
        wait_ready(base + "/ready")
        yield base, models, versions


def local_answer(models: Path, version: str, row: dict) -> str:
    modeler = Modeler(models, lazy_train=False)
    return modeler.infer(row, model=modeler.saved_version(version)).labels[0]


def test_a_pinned_version_answers_even_when_not_current(served) -> None:
    base, models, versions = served
    current = requests.post(f"{base}/predict", json=VIRGINICA, timeout=10).json()
    assert current["ModelVersion"] == versions[-1]
    # Each version in turn, twice round: with a cache of one, every call evicts the other.
    for version in versions * 2:
        res = requests.post(f"{base}/models/iris/versions/{version}/predict", json=VIRGINICA, timeout=10)
        assert res.status_code == 200, res.text
        assert res.json()["ModelVersion"] == version
        assert res.json()["Class"] == local_answer(models, version, VIRGINICA)
    answers = {
        v: requests.post(f"{base}/models/iris/versions/{v}/predict", json=VIRGINICA, timeout=10).json()["Class"]
        for v in versions
    }
    assert len(set(answers.values())) > 1, "the versions must differ for this test to mean anything"
    # /predict still answers from the current version.
    assert requests.post(f"{base}/predict", json=VIRGINICA, timeout=10).json() == current


def test_a_pinned_version_over_the_open_inference_protocol(served) -> None:
    base, models, versions = served
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": list(VIRGINICA.values())}]}
    res = requests.post(f"{base}/v2/models/iris/versions/{versions[0]}/infer", json=body, timeout=10)
    assert res.status_code == 200, res.text
    answer = res.json()
    assert answer["model_version"] == versions[0]
    label = next(o for o in answer["outputs"] if o["name"] == "label")["data"][0]
    assert label == local_answer(models, versions[0], VIRGINICA)
    meta = requests.get(f"{base}/v2/models/iris/versions/{versions[0]}", timeout=10).json()
    assert meta["versions"] == [versions[0]]
    ready = requests.get(f"{base}/v2/models/iris/versions/{versions[1]}/ready", timeout=10)
    assert ready.status_code == 200 and ready.json() == {"name": "iris", "ready": True}


def test_an_unknown_version_is_a_404_naming_it(served) -> None:
    base, *_ = served
    for path in ("/models/iris/versions/20200101T000000Z-000000/predict",):
        res = requests.post(base + path, json=SEED_ROW, timeout=10)
        assert res.status_code == 404
        assert res.json()["message"] == "model 'iris' has no saved version '20200101T000000Z-000000'"
    v2 = requests.post(
        f"{base}/v2/models/iris/versions/nope/infer",
        json={"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 4], "data": [1, 2, 3, 4]}]},
        timeout=10,
    )
    assert v2.status_code == 404 and "'nope'" in v2.json()["error"]


def test_the_cache_keeps_only_the_most_recently_used_versions(tmp_path: Path) -> None:
    versions = [Modeler(tmp_path, max_depth=depth).fit().version for depth in (1, 2, 3)]
    modeler = Modeler(tmp_path, lazy_train=False)
    cache = PinnedCache(size=2)
    first = cache.get("iris", versions[0], modeler)
    assert cache.get("iris", versions[0], modeler) is first  # kept: no second load
    cache.get("iris", versions[1], modeler)
    cache.get("iris", versions[0], modeler)  # the most recent again
    cache.get("iris", versions[2], modeler)  # evicts versions[1], the least recently used
    assert len(cache) == 2
    assert cache.get("iris", versions[0], modeler) is first
