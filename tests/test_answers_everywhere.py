"""One answer per request on every surface (issue 11.3), and the predictor seam behind it (10.5).

HTTP ``/predict`` and ``python -m mldeploy predict`` (a real process) read the same body shapes
and build their answers in one place (``mldeploy.api.answers``), so the same request gets the
same answer, ``Warnings`` and ``Explanation`` included; the Modeler and the file scorer give the
same classes and probabilities. The HTTP layer never names a tree, a leaf or a node: it asks the
predictor, and a predictor of another kind answers through the same code.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from flask.testing import FlaskClient

from mldeploy.api.answers import entry_fragments, predict_answer
from mldeploy.http.app import create_app
from modeler.errors import InvalidInput
from modeler.inference import Inference
from modeler.modeler import Modeler
from modeler.predictors.base import LABELS, PROBABILITIES, Answers, Predictor
from tests.support import REPO, SEED_ROW, run_cli

FEATURES = list(SEED_ROW)
OUTLIER = {**SEED_ROW, "petal_length": 25.0}
VIRGINICA = [6.5, 3.0, 5.5, 2.0]
# Every body shape /predict takes, each once with an out-of-range value somewhere.
REQUESTS = {
    "row": SEED_ROW,
    "row-out-of-range": OUTLIER,
    "features": {"features": list(OUTLIER.values())},
    "array": [SEED_ROW, OUTLIER],
    "instances": {"instances": [SEED_ROW, VIRGINICA]},
    "columns": {"columns": FEATURES[::-1], "data": [VIRGINICA[::-1], list(OUTLIER.values())[::-1]]},
}


@pytest.fixture(scope="module")
def http(models: Path) -> FlaskClient:
    return create_app({"TESTING": True, "MODEL_DIR": str(models), "WARMUP": False}).test_client()


def over_http(client: FlaskClient, body: object, explain: bool = False) -> dict:
    res = client.post("/predict" + ("?explain=true" if explain else ""), json=body)
    assert res.status_code == 200, res.get_json()
    return res.get_json()


def on_the_command_line(models: Path, body: object, explain: bool = False) -> dict:
    done = run_cli(models, "predict", json.dumps(body), *(["--explain"] if explain else []))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.parametrize("name", list(REQUESTS))
def test_the_command_line_answers_what_http_answers(http: FlaskClient, models: Path, name: str) -> None:
    body = REQUESTS[name]
    expected = over_http(http, body)
    assert on_the_command_line(models, body) == expected
    if "out-of-range" in name or name in ("features", "array", "columns"):
        assert "Warnings" in json.dumps(expected)  # the CLI used to drop them


def test_explain_on_the_command_line_is_explain_over_http(http: FlaskClient, models: Path) -> None:
    for body in (OUTLIER, REQUESTS["instances"]):
        expected = over_http(http, body, explain=True)
        assert "Explanation" in json.dumps(expected)
        assert on_the_command_line(models, body, explain=True) == expected


def test_the_command_line_refuses_what_http_refuses(http: FlaskClient, models: Path) -> None:
    for body in ([5.0, 3.2, 1.5, 0.3], {**SEED_ROW, "petal_width": "0.3"}, {"features": [1, 2], "x": 1}):
        res = http.post("/predict", json=body)
        assert res.status_code == 400
        done = run_cli(models, "predict", json.dumps(body))
        assert done.returncode == 3 and done.stdout == ""
        for problem in res.get_json()["errors"]:
            assert problem["problem"] in done.stderr


def test_the_modeler_and_the_scorer_give_the_same_classes_and_probabilities(
    http: FlaskClient, models: Path, tmp_path: Path
) -> None:
    rows = [SEED_ROW, OUTLIER, dict(zip(FEATURES, VIRGINICA, strict=True)), {**SEED_ROW, "petal_width": 1.7}]
    answers = over_http(http, rows)["Predictions"]
    modeler = Modeler(models)
    assert modeler.predict(rows) == [a["Class"] for a in answers]
    assert modeler.predict_proba(rows) == [a["Probabilities"] for a in answers]
    source = tmp_path / "rows.csv"
    pd.DataFrame(rows).to_csv(source, index=False)
    done = run_cli(models, "score", str(source))
    assert done.returncode == 0, done.stderr
    scored = pd.read_csv(tmp_path / "rows.scored.csv")
    assert scored["Class"].tolist() == [a["Class"] for a in answers]
    classes = list(answers[0]["Probabilities"])
    assert scored[classes].to_dict("records") == [a["Probabilities"] for a in answers]


# -- the predictor seam ---------------------------------------------------------------------------

# What only a tree's predictor knows; the HTTP side (everything in mldeploy/) must not name it.
TREE_NAMES = {"tree", "leaves", "leaf", "leaf_labels", "leaf_proba", "leaf_of", "leaf_proba_dicts", "node"}
TREE_MODULES = {"modeler.compiled_tree", "modeler.predictors.tree", "modeler.explanation"}


def test_the_service_never_names_a_tree_a_leaf_or_a_node() -> None:
    found = []
    for path in sorted((REPO / "mldeploy").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in TREE_NAMES:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} .{node.attr}")
            elif isinstance(node, ast.ImportFrom) and node.module in TREE_MODULES:
                found.append(f"{path.relative_to(REPO)}:{node.lineno} from {node.module}")
    assert found == []


def test_each_entry_is_serialised_once_per_version(models: Path, tmp_path: Path) -> None:
    modeler = Modeler(models)
    first = modeler.infer(SEED_ROW)
    table, _ = first.answers.table_entries()
    assert entry_fragments(table) is entry_fragments(modeler.infer([SEED_ROW, OUTLIER]).answers.table_entries()[0])
    other = Modeler(tmp_path / "other").fit(max_depth=1).infer(SEED_ROW).answers.table_entries()[0]
    assert entry_fragments(other) is not entry_fragments(table)


class EstimatorAnswers(Answers):
    """What a predictor that calls the estimator gives: arrays, no table."""

    def __init__(self, labels: np.ndarray, probabilities: np.ndarray, classes: tuple[str, ...]) -> None:
        self._labels, self._probabilities, self._classes = labels, probabilities, classes

    def __len__(self) -> int:
        return len(self._labels)

    def labels(self) -> list[str]:
        return self._labels.tolist()

    def label_array(self) -> np.ndarray:
        return self._labels.astype(object)

    def probabilities(self) -> np.ndarray:
        return self._probabilities

    def probability_dicts(self) -> list[dict[str, float]]:
        return [dict(zip(self._classes, row, strict=True)) for row in self._probabilities.tolist()]


class EstimatorPredictor(Predictor):
    """The shape of the general predictor of the next issue: the estimator, once per request, on
    one array; labels and probabilities, no explanation."""

    kind = "scikit-learn estimator"
    capabilities = frozenset({LABELS, PROBABILITIES})

    def __init__(self, estimator: object, features: list[str]) -> None:
        self._estimator, self.features = estimator, features
        self.classes = tuple(str(c) for c in estimator.classes_)

    @property
    def estimator(self) -> object:
        return self._estimator

    def answer(self, rows: object, *, single: bool, use_estimator: bool = False) -> EstimatorAnswers:
        X = pd.DataFrame(np.asarray(rows, dtype=np.float64), columns=self.features)
        labels = self._estimator.predict(X)
        return EstimatorAnswers(labels, self._estimator.predict_proba(X), self.classes)


def test_a_predictor_of_another_kind_answers_through_the_same_builder(models: Path) -> None:
    modeler = Modeler(models)
    model = modeler.ensure_ready()
    general = EstimatorPredictor(model.estimator, list(model.features))

    def through(predictor: Predictor, x: object) -> Inference:
        tree = modeler.infer(x)
        return tree._replace(answers=predictor.answer(tree.rows, single=tree.single), predictor=predictor)

    for x in (OUTLIER, [SEED_ROW, OUTLIER, dict(zip(FEATURES, VIRGINICA, strict=True))]):
        expected = json.loads(json.dumps(predict_answer(modeler.infer(x))))
        assert predict_answer(through(general, x)) == expected
    with pytest.raises(InvalidInput) as caught:
        predict_answer(through(general, SEED_ROW), explain=True)
    assert [(e.field, e.problem) for e in caught.value.errors] == [
        ("explain", "a scikit-learn estimator model gives no explanations")
    ]
