"""Why a tree gave its answer: the root-to-leaf path of one row, and what the leaf saw in training.

Each step compares the row's value with a split threshold exactly as the prediction did (on the
float32-cast value, as sklearn does), but reports the value the caller sent. The leaf's training
class counts come from the fitted tree: since scikit-learn 1.4 ``tree_.value`` holds class
fractions, so counts are ``weighted_n_node_samples * value`` (plain counts unless the model was
trained with ``class_weight``).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modeler.compiled_tree import CompiledTree

LE, GT = "<=", ">"


def short_threshold(threshold: float) -> str:
    """The threshold for people: the shortest decimal within one float32 step of it, as
    scikit-learn's ``export_text`` shows it (2.449999988079071 -> 2.45).

    Only for words: the structured step carries the exact threshold.
    """
    threshold = float(threshold)
    nearest = np.float32(threshold)
    if float(nearest) > threshold:
        neighbours = {nearest, np.nextafter(nearest, np.float32(-np.inf))}
    else:
        neighbours = {nearest, np.nextafter(nearest, np.float32(np.inf))}
    for digits in range(10):
        candidate = round(threshold, digits)
        if np.float32(candidate) in neighbours:
            return repr(candidate)
    return repr(threshold)


@dataclass(frozen=True)
class Step:
    """One split on the way down: ``value op threshold`` was true for this row."""

    feature: str
    op: str
    threshold: float
    value: float

    def as_dict(self) -> dict:
        """The structured form, e.g. ``{"feature": "petal_length", "op": "<=", ...}``."""
        return {"feature": self.feature, "op": self.op, "threshold": self.threshold, "value": self.value}

    def text(self) -> str:
        """The step in plain words."""
        value, threshold = repr(self.value), short_threshold(self.threshold)
        if value == threshold:  # only at the boundary: exact numbers, or it would read "2.45 > 2.45"
            threshold = repr(self.threshold)
        side = "at or below" if self.op == LE else "above"
        return f"{self.feature} is {value}, {side} the split at {threshold}"


@dataclass(frozen=True)
class Explanation:
    """The decision path of one row, then the leaf: its class, and its training rows by class."""

    steps: tuple[Step, ...]
    leaf: int
    label: str
    samples: int
    class_counts: dict[str, float]

    def leaf_text(self) -> str:
        """The leaf in plain words."""
        counts = ", ".join(f"{_count(n)} {name}" for name, n in self.class_counts.items())
        return f"leaf {self.leaf} holds {self.samples} training rows ({counts}): predicted {self.label}"

    def as_dict(self) -> dict:
        """JSON-ready: plain-words ``text``, structured ``steps``, and the ``leaf``."""
        return {
            "text": [step.text() for step in self.steps] + [self.leaf_text()],
            "steps": [step.as_dict() for step in self.steps],
            "leaf": {
                "node": self.leaf,
                "class": self.label,
                "samples": self.samples,
                "class_counts": {name: _count(n) for name, n in self.class_counts.items()},
            },
        }


def _count(n: float) -> float | int:
    """Whole counts as ints (the usual case); weighted counts (class_weight) stay floats."""
    rounded = round(n)
    return rounded if abs(n - rounded) < 1e-9 else round(n, 6)


def explain_row(tree: CompiledTree, features: Sequence[str], row: Sequence[float]) -> Explanation:
    """The path of one row (floats in feature order) through ``tree``."""
    path = tree.path_of(row)
    steps = []
    for node, child in itertools.pairwise(path):
        column = int(tree.feature[node])
        op = LE if child == tree.left[node] else GT
        steps.append(Step(features[column], op, float(tree.threshold[node]), float(row[column])))
    leaf = path[-1]
    counts = tree.leaf_counts[leaf].tolist()
    return Explanation(
        steps=tuple(steps),
        leaf=leaf,
        label=tree.leaf_labels[leaf],
        samples=int(tree.n_node_samples[leaf]),
        class_counts=dict(zip(tree.classes, counts, strict=True)),
    )
