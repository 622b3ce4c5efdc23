"""Live performance: the logged predictions joined with their ground truth, over a window.

A classifier's answer: ``accuracy``, per class ``precision``, ``recall``, ``f1`` and ``support``
(labelled rows of that class), and the ``confusion_matrix`` (rows: actual, columns: predicted, in
``labels`` order). A figure with nothing to divide by (no row predicted as a class: its
precision) is null, not 0. A regressor's: ``mae``, ``rmse`` and ``r2`` (null below two rows or when
the actual values do not vary). Both say how many rows were ``labelled``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mldeploy.contract import CLASS, PREDICTION
from mldeploy.monitoring.feedback import CLASSIFICATION, REGRESSION
from mldeploy.monitoring.store import Store
from mldeploy.monitoring.windows import Window, labelled


def _ratio(num: float, den: float) -> float | None:
    return float(num / den) if den else None


def _label_key(value: object) -> tuple:
    # Labels compared by JSON kind and value: the string "1" is not the class 1, 1.0 is.
    return (isinstance(value, bool), isinstance(value, str), value)


def classification_report(actual: Sequence, predicted: Sequence, classes: Sequence = ()) -> dict:
    """Accuracy, per-class precision/recall/F1/support and the confusion matrix of ``predicted``
    against ``actual``; the labels are ``classes`` then any other label seen, in order seen."""
    labels: list = []
    index: dict[tuple, int] = {}
    for value in [*classes, *actual, *predicted]:
        key = _label_key(value)
        if key not in index:
            index[key] = len(labels)
            labels.append(value)
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    for a, p in zip(actual, predicted, strict=True):
        matrix[index[_label_key(a)], index[_label_key(p)]] += 1
    total = int(matrix.sum())
    correct = int(np.trace(matrix))
    per_class = {}
    for i, label in enumerate(labels):
        tp = int(matrix[i, i])
        predicted_as, actually = int(matrix[:, i].sum()), int(matrix[i, :].sum())
        per_class[str(label)] = {
            "precision": _ratio(tp, predicted_as),
            "recall": _ratio(tp, actually),
            "f1": _ratio(2 * tp, predicted_as + actually),
            "support": actually,
        }
    return {
        "task": CLASSIFICATION,
        "labelled": total,
        "accuracy": _ratio(correct, total),
        "correct": correct,
        "classes": per_class,
        "confusion_matrix": {"labels": labels, "matrix": matrix.tolist()},
    }


def regression_report(actual: Sequence[float], predicted: Sequence[float]) -> dict:
    """MAE, RMSE and R² of ``predicted`` against ``actual``."""
    y = np.asarray(actual, dtype=float)
    error = np.asarray(predicted, dtype=float) - y
    n = int(y.size)
    spread = float(np.sum((y - y.mean()) ** 2)) if n else 0.0
    return {
        "task": REGRESSION,
        "labelled": n,
        "mae": float(np.mean(np.abs(error))) if n else None,
        "rmse": float(np.sqrt(np.mean(error**2))) if n else None,
        "r2": 1.0 - float(np.sum(error**2)) / spread if n >= 2 and spread > 0 else None,
    }


def performance(store: Store, model: str, version: str, window: Window, task: str, classes: Sequence = ()) -> dict:
    """The live performance of ``version`` of ``model`` over ``window`` (see the module's doc)."""
    rows = labelled(store, model, version, window)
    actual, predicted, times = [], [], []
    for answered, answer, truth in rows:
        guess = answer.get(PREDICTION) if task == REGRESSION else answer.get(CLASS)
        if guess is None:  # logged by a model of the other task under this version id: not comparable
            continue
        actual.append(truth)
        predicted.append(guess)
        times.append(answered)
    report = (
        regression_report(actual, predicted)
        if task == REGRESSION
        else classification_report(actual, predicted, classes)
    )
    span = {"first": min(times).isoformat(), "last": max(times).isoformat()} if times else None
    return {"version": version, **report, "window": window.describe(), "answered": span}
