"""A fitted DecisionTreeClassifier flattened into arrays, for predictions without sklearn's
per-call input checks (about 130 µs a call on one row; a walk of the arrays is about 1 µs).

Results are identical to sklearn's: inputs are cast to float32 first, exactly as
``DecisionTreeClassifier.predict`` does, and probabilities are the leaf's stored fractions.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

import numpy as np
from sklearn.tree import DecisionTreeClassifier

# sklearn marks leaves with this child index (sklearn.tree._tree.TREE_LEAF).
TREE_LEAF = -1


class CompiledTree:
    """The arrays of one fitted tree plus the per-leaf answers, computed once after load."""

    def __init__(self, estimator: DecisionTreeClassifier) -> None:
        tree = estimator.tree_
        if tree.n_outputs != 1:
            raise ValueError("only single-output classifiers are supported")
        self.classes: tuple[str, ...] = tuple(str(c) for c in estimator.classes_)
        self.n_features = int(tree.n_features)
        self.feature = np.asarray(tree.feature, dtype=np.intp)
        self.threshold = np.asarray(tree.threshold, dtype=np.float64)
        self.left = np.asarray(tree.children_left, dtype=np.intp)
        self.right = np.asarray(tree.children_right, dtype=np.intp)
        self.is_leaf = self.left == TREE_LEAF
        # sklearn's predict_proba returns tree_.value[leaf] as is (fractions per class).
        self.leaf_proba = np.ascontiguousarray(tree.value[:, 0, : len(self.classes)], dtype=np.float64)
        self.leaf_class = self.leaf_proba.argmax(axis=1)  # same tie rule as sklearn's argmax
        self.depth = int(tree.max_depth)
        # For explanations: training rows per node, and per class (value holds fractions).
        self.n_node_samples = np.asarray(tree.n_node_samples, dtype=np.intp)
        self.leaf_counts = self.leaf_proba * np.asarray(tree.weighted_n_node_samples, dtype=np.float64)[:, None]
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
        """Leaf index per row of a 2-D float array, level by level with numpy."""
        X32 = np.asarray(X, dtype=np.float32)
        n = X32.shape[0]
        node = np.zeros(n, dtype=np.intp)
        rows = np.arange(n)
        for _ in range(self.depth):
            leaf = self.is_leaf[node]
            if leaf.all():
                break
            column = np.where(leaf, 0, self.feature[node])
            go_left = X32[rows, column] <= self.threshold[node]
            node = np.where(leaf, node, np.where(go_left, self.left[node], self.right[node]))
        return node
