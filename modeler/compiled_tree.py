"""A fitted DecisionTreeClassifier flattened into arrays, for predictions without sklearn's
per-call input checks (about 130 µs a call on one row; a walk of the arrays is well under 1 µs).

Results are identical to sklearn's: inputs are cast to float32 first, exactly as
``DecisionTreeClassifier.predict`` does, and probabilities are the leaf's stored fractions.

The arrays are saved next to the pickled estimator as plain JSON (:meth:`CompiledTree.to_json`),
so a server can answer from a saved version without importing scikit-learn at all.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from sklearn.tree import DecisionTreeClassifier

# sklearn marks leaves with this child index (sklearn.tree._tree.TREE_LEAF).
TREE_LEAF = -1
# Bumped when the saved layout changes; a file of another format is not used.
FORMAT = "mldeploy-compiled-tree/1"


class CompiledTree:
    """The arrays of one fitted tree plus the per-leaf answers, computed once after load."""

    def __init__(
        self,
        classes: Sequence[str],
        feature: Sequence[int],
        threshold: Sequence[float],
        left: Sequence[int],
        right: Sequence[int],
        proba: Sequence[Sequence[float]],
        n_node_samples: Sequence[int],
        weighted_n_node_samples: Sequence[float],
    ) -> None:
        self.classes: tuple[str, ...] = tuple(str(c) for c in classes)
        self.feature = np.asarray(feature, dtype=np.intp)
        self.threshold = np.asarray(threshold, dtype=np.float64)
        self.left = np.asarray(left, dtype=np.intp)
        self.right = np.asarray(right, dtype=np.intp)
        self.is_leaf = self.left == TREE_LEAF
        # sklearn's predict_proba returns tree_.value[leaf] as is (fractions per class).
        self.leaf_proba = np.ascontiguousarray(proba, dtype=np.float64)
        if not (len(self.feature) == len(self.threshold) == len(self.left) == len(self.right) == len(self.leaf_proba)):
            raise ValueError("the tree's arrays differ in length")
        self.leaf_class = self.leaf_proba.argmax(axis=1)  # same tie rule as sklearn's argmax
        self.depth = self._depth()
        # For explanations: training rows per node, and per class (value holds fractions).
        self.n_node_samples = np.asarray(n_node_samples, dtype=np.intp)
        self.weighted_n_node_samples = np.asarray(weighted_n_node_samples, dtype=np.float64)
        self.leaf_counts = self.leaf_proba * self.weighted_n_node_samples[:, None]
        # For the vectorised walk: leaves point to themselves and read feature 0 (any would do).
        nodes = np.arange(len(self.left), dtype=np.intp)
        self._step_feature = np.where(self.is_leaf, 0, self.feature)
        self._step_left = np.where(self.is_leaf, nodes, self.left)
        self._step_right = np.where(self.is_leaf, nodes, self.right)
        # Plain lists for the single-row walk: list indexing beats numpy scalar access.
        self._feature = self.feature.tolist()
        self._threshold = self.threshold.tolist()
        self._left = self.left.tolist()
        self._right = self.right.tolist()
        # Per-node answers, so that one row costs a walk and two list look-ups.
        self.leaf_labels: list[str] = [self.classes[i] for i in self.leaf_class.tolist()]
        self.leaf_proba_dicts: list[dict[str, float]] = [
            dict(zip(self.classes, row, strict=True)) for row in self.leaf_proba.tolist()
        ]

    @classmethod
    def from_estimator(cls, estimator: DecisionTreeClassifier) -> CompiledTree:
        """Flatten a fitted single-output classifier."""
        tree = estimator.tree_
        if tree.n_outputs != 1:
            raise ValueError("only single-output classifiers are supported")
        n_classes = len(estimator.classes_)
        return cls(
            [str(c) for c in estimator.classes_],
            tree.feature,
            tree.threshold,
            tree.children_left,
            tree.children_right,
            tree.value[:, 0, :n_classes],
            tree.n_node_samples,
            tree.weighted_n_node_samples,
        )

    def to_json(self) -> bytes:
        """The arrays as JSON; floats are written as their shortest exact repr, so they read back
        bit for bit."""
        return json.dumps(
            {
                "format": FORMAT,
                "classes": list(self.classes),
                "feature": self._feature,
                "threshold": self._threshold,
                "left": self._left,
                "right": self._right,
                "proba": self.leaf_proba.tolist(),
                "n_node_samples": self.n_node_samples.tolist(),
                "weighted_n_node_samples": self.weighted_n_node_samples.tolist(),
            }
        ).encode()

    @classmethod
    def from_json(cls, data: bytes) -> CompiledTree:
        """The tree :meth:`to_json` wrote; ValueError when ``data`` is not one."""
        raw = json.loads(data)
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        arrays = ("feature", "threshold", "left", "right", "proba", "n_node_samples", "weighted_n_node_samples")
        return cls(raw["classes"], *(raw[name] for name in arrays))

    def _depth(self) -> int:
        """Levels below the root (sklearn's max_depth), from the children arrays."""
        depth, level = 0, [0]
        while True:
            level = [c for n in level if self._is_internal(n) for c in (int(self.left[n]), int(self.right[n]))]
            if not level:
                return depth
            depth += 1

    def _is_internal(self, node: int) -> bool:
        return bool(self.left[node] != TREE_LEAF)

    def leaf_of(self, row: Sequence[float]) -> int:
        """Leaf index for one row of floats in feature order."""
        x = array("f", row)  # the float32 cast sklearn applies; thresholds sit between float32s
        feature, threshold, left, right = self._feature, self._threshold, self._left, self._right
        node = 0
        while left[node] != TREE_LEAF:
            node = left[node] if x[feature[node]] <= threshold[node] else right[node]
        return node

    def path_of(self, row: Sequence[float]) -> list[int]:
        """Nodes from the root to the leaf for one row, walked exactly as :meth:`leaf_of` walks."""
        x = array("f", row)
        node, path = 0, [0]
        while self._left[node] != TREE_LEAF:
            node = self._left[node] if x[self._feature[node]] <= self._threshold[node] else self._right[node]
            path.append(node)
        return path

    def leaves(self, X: np.ndarray) -> np.ndarray:
        """Leaf index per row of a 2-D float array, level by level with numpy.

        Leaves loop back to themselves (``_step_*``), so every row takes ``depth`` steps with no
        masks: a row that reached its leaf early stays there.
        """
        X32 = np.ascontiguousarray(X, dtype=np.float32)  # sklearn's cast
        flat = X32.ravel()
        n_features = X32.shape[1]
        offsets = np.arange(X32.shape[0], dtype=np.intp) * n_features
        node = np.zeros(X32.shape[0], dtype=np.intp)
        feature, threshold, left, right = self._step_feature, self.threshold, self._step_left, self._step_right
        for _ in range(self.depth):
            # float32 values compared with float64 thresholds, exactly as sklearn compares them.
            go_left = flat[offsets + feature[node]] <= threshold[node]
            node = np.where(go_left, left[node], right[node])
        return node
