"""Several models in one server (``python -m mldeploy serve``, 2 workers): the default model keeps
today's layout and /predict, another model trained with ``train --name`` into its own folder is
served at /models/<name>/predict and /v2/models/<name>/..., /models lists both, a model trained
while the server runs is served without a restart, and the metrics and logs name the model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from modeler.modeler import Modeler
from modeler.store import POINTER_FILE, VERSIONS_DIR
from tests.support import SEED_ROW, clean_env, free_port, metric_value, run_cli, running, wait_ready
from tests.test_routes import PREDICT_BODIES

WINE = "wine"


@pytest.fixture(scope="module")
def wine_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import load_wine

    path = tmp_path_factory.mktemp("data") / "wine.csv"
    load_wine(as_frame=True).frame.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, wine_csv: Path) -> Iterator[tuple[str, Path, str, str]]:
    """A model directory laid out as before several models existed (the default model's versions
    at its root), plus wine trained by the command line; yields (base URL, dir, iris, wine)."""
    root = tmp_path_factory.mktemp("multi")
    models = root / "models"
    iris = Modeler(models).fit().version  # today's layout: models/CURRENT, models/versions/
    trained = run_cli(models, "train", "--name", WINE, MLDEPLOY_DATA=str(wine_csv), MLDEPLOY_TARGET="target")
    assert trained.returncode == 0, trained.stderr
    wine = json.loads(trained.stdout)["version"]
    port = free_port()
    env = clean_env(MLDEPLOY_MODEL_DIR=str(models))
    args = ["-m", "mldeploy", "serve", "--workers", "2", "--port", str(port)]
    with running(args, Path.cwd(), port, env, log=root / "server.log") as (base, _):
        wait_ready(base + "/ready")
        yield base, models, iris, wine


def wine_row(models: Path) -> dict:
    return dict(zip(Modeler(models / WINE, lazy_train=False).features, [13.0] + [1.0] * 12, strict=True))


def test_each_model_keeps_its_versions_in_its_own_folder(served) -> None:
    _, models, iris, wine = served
    assert (models / POINTER_FILE).read_text().strip() == iris
    assert (models / WINE / POINTER_FILE).read_text().strip() == wine
    assert [p.name for p in (models / WINE / VERSIONS_DIR).iterdir()] == [wine]
    listed = run_cli(models, "versions", "--name", WINE)
    assert [v["version"] for v in json.loads(listed.stdout)] == [wine]
    assert [v["version"] for v in json.loads(run_cli(models, "versions").stdout)] == [iris]


def test_models_lists_every_model_with_its_current_version(served) -> None:
    base, _, iris, wine = served
    assert requests.get(f"{base}/models", timeout=10).json() == {
        "default": "iris",
        "models": [
            {"name": "iris", "current": iris, "default": True, "rollout": None},
            {"name": WINE, "current": wine, "default": False, "rollout": None},
        ],
    }


@pytest.mark.parametrize("shape", PREDICT_BODIES)
def test_the_default_model_answers_the_same_at_both_paths(served, shape: str) -> None:
    base, _, iris, _ = served
    plain = requests.post(f"{base}/predict", json=PREDICT_BODIES[shape], timeout=10)
    named = requests.post(f"{base}/models/iris/predict", json=PREDICT_BODIES[shape], timeout=10)
    assert plain.status_code == named.status_code == 200
    assert plain.json() == named.json() and plain.json()["ModelVersion"] == iris


def test_another_model_answers_from_its_own_versions(served, wine_csv: Path) -> None:
    base, models, _, wine = served
    row = wine_row(models)
    answer = requests.post(f"{base}/models/{WINE}/predict", json=row, timeout=10)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["ModelVersion"] == wine and str(body["Class"]) in {"0", "1", "2"}
    local = run_cli(models, "predict", json.dumps(row), "--name", WINE)
    assert json.loads(local.stdout) == body  # the command line gives the server's answer
    # Its fields are its own: an iris row is refused, naming what is missing.
    refused = requests.post(f"{base}/models/{WINE}/predict", json=SEED_ROW, timeout=10)
    assert refused.status_code == 400 and {e["field"] for e in refused.json()["errors"]} >= {"alcohol"}
    meta = requests.get(f"{base}/v2/models/{WINE}", timeout=10).json()
    assert meta["name"] == WINE and meta["versions"] == [wine]
    assert [i["name"] for i in meta["inputs"]][:2] == ["alcohol", "malic_acid"]
    infer = requests.post(
        f"{base}/v2/models/{WINE}/infer",
        json={"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 13], "data": list(row.values())}]},
        timeout=10,
    )
    assert infer.status_code == 200, infer.text
    assert infer.json()["model_name"] == WINE and infer.json()["model_version"] == wine
    assert requests.get(f"{base}/v2/models/{WINE}/ready", timeout=10).json() == {"name": WINE, "ready": True}


def test_an_unknown_model_is_a_404_naming_it(served) -> None:
    base, *_ = served
    for method, path in (
        ("POST", "/models/nosuch/predict"),
        ("GET", "/models/nosuch/rollout"),
        ("POST", "/models/nosuch/versions/v1/predict"),
    ):
        res = requests.request(method, base + path, json=SEED_ROW, timeout=10)
        assert res.status_code == 404 and "unknown model 'nosuch'" in res.json()["message"], res.text
    v2 = requests.post(f"{base}/v2/models/nosuch/infer", json={"inputs": []}, timeout=10)
    assert v2.status_code == 404 and "nosuch" in v2.json()["error"]


def test_a_model_trained_while_the_server_runs_is_served_without_a_restart(served) -> None:
    base, models, *_ = served
    trained = run_cli(models, "train", "--name", "flowers", "--param", "max_depth=2")
    assert trained.returncode == 0, trained.stderr
    version = json.loads(trained.stdout)["version"]
    answer = requests.post(f"{base}/models/flowers/predict", json=SEED_ROW, timeout=10)
    assert answer.status_code == 200 and answer.json()["ModelVersion"] == version
    assert "flowers" in [m["name"] for m in requests.get(f"{base}/models", timeout=10).json()["models"]]


def test_the_metrics_and_the_document_name_the_model(served) -> None:
    base, models, iris, wine = served
    requests.post(f"{base}/predict", json=SEED_ROW, timeout=10)
    requests.post(f"{base}/models/{WINE}/predict", json=wine_row(models), timeout=10)
    text = requests.get(f"{base}/metrics", timeout=10).text
    assert metric_value(text, "mldeploy_model_answers_total", model="iris", version=iris, role="current") >= 1
    assert metric_value(text, "mldeploy_model_answers_total", model=WINE, version=wine, role="current") >= 1
    spec = requests.get(f"{base}/openapi.json", timeout=10).json()
    assert "/models/{model_name}/predict" in spec["paths"]
    assert "/models/{model_name}/versions/{model_version}/predict" in spec["paths"]
    name = spec["paths"]["/models/{model_name}/predict"]["post"]["parameters"][0]
    assert name["name"] == "model_name" and name["schema"]["enum"][0] == "iris" and WINE in name["schema"]["enum"]


def test_a_bad_name_is_refused_by_the_command_line(served) -> None:
    _, models, *_ = served
    for name in ("versions", "../x", ""):
        done = run_cli(models, "versions", "--name", name)
        assert done.returncode == 2 and "not a model name" in done.stderr
