"""Fitted tree ensembles flattened into arrays: answers identical to scikit-learn's, without it.

Supported: RandomForest and ExtraTrees (classifier and regressor), GradientBoosting (classifier
and regressor, with the default Dummy init or ``init="zero"``) and HistGradientBoosting
(classifier and regressor, numerical features with missing values; categorical splits are
refused with :class:`~modeler.load_errors.NotCompilable`). Anything else is refused too, so
that the caller serves it with the general predictor rather than answer wrongly.

Identical, and why:

- Inputs are compared as scikit-learn compares them: forests and GradientBoosting cast to float32
  first (their thresholds lie between two float32 values), HistGradientBoosting compares float64.
  A missing value (NaN) follows the node's ``missing_go_to_left``, as scikit-learn's walks do.
- Sums run in scikit-learn's order: a forest adds each tree's leaf values to zeros, tree by tree,
  then divides by the number of trees; boosting starts from the init (GradientBoosting's Dummy
  prior through the loss's link, HistGradientBoosting's baseline) and adds
  ``learning_rate * leaf value`` stage by stage (HistGradientBoosting's leaves are already
  shrunk). The link is the same numpy/scipy call on an array of the same memory layout: scipy's
  ``expit`` (binary), scikit-learn's softmax steps (multiclass), ``exp`` (log link).
- The binary decision is GradientBoosting's ``raw >= 0`` and HistGradientBoosting's ``raw > 0``.

Paths: a batch finds every tree's leaf for every row at once with bit vectors (QuickScorer: per
feature, one table lookup gives the leaves a row can still reach in each tree; the AND over the
features leaves the exit leaf as the lowest bit). Those tables take memory in proportion to trees
x leaves x thresholds; past ``table_bytes_limit`` a level-by-level walk replaces them. One row
walks the trees as generated Python, each tree's splits as nested ifs and each leaf adding its
values to the row's sums (modeler/ensemble_walk.py), or over flat lists where that does not apply
(a missing value, an ensemble too large).

Explanations (:meth:`CompiledEnsemble.contributions`) are Saabas path contributions: along each
tree's path, the change in the node value at each split is credited to the split's feature; the
root values are the bias. For a forest these are in probability (or value) space and average
over the trees, so bias + contributions is the answer. For boosting they are raw scores (the
link space); the answer is ``link(raw)``, and each feature's share of the probability is its raw
contribution times the link's average slope on the straight line from the bias's raw score to
the row's (integrated gradients on the link). For one raw score (binary, log link) that slope is
the secant ``(link(raw) - link(bias)) / (raw - bias)``; for softmax it is the gradient averaged by
Gauss-Legendre quadrature, corrected along the line so that the shares sum to the probability
change exactly. Either way bias + contributions equals the answer to rounding (1e-9 is checked).

The arrays are saved as raw little-endian bytes after a JSON header (:meth:`to_bytes`): no
pickle, and every index is checked on load, so a crafted file cannot send a walk out of bounds.
"""

from __future__ import annotations

import json
import math
import struct
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from modeler.ensemble_tables import BLOCK_ROWS, LEAF
from modeler.errors import NOT_FINITE, FieldError, InvalidInput
from modeler.load_errors import NotCompilable

if TYPE_CHECKING:
    from modeler.ensemble_tables import LeafTables
    from modeler.ensemble_walk import RowSummer, RowWalker, Trees

# Bumped when the saved layout changes; a file of another format is not used.
FORMAT = "mldeploy-compiled-ensemble/1"
MAGIC = b"MLDEPLOY-COMPILED-ENSEMBLE\n"

FOREST, BOOSTING = "forest", "boosting"
IDENTITY, LOGIT, HALF_LOGIT, SOFTMAX, LOG = "identity", "logit", "half_logit", "softmax", "log"
CAST_FLOAT32, CAST_FLOAT64 = "float32", "float64"
PROBABILITY, VALUE = "probability", "value"

# The bit-vector tables may take this much memory; past it, batches use the level walk.
TABLE_BYTES_LIMIT = 64 * 2**20
# Rows per batch chunk: bounds the (trees x rows) leaves and values to a few tens of MB.
CHUNK_ROWS = 16384
# Gauss-Legendre nodes for the softmax explanation (its correction makes the sum exact anyway).
QUADRATURE_NODES = 32

# The saved arrays and the dtypes they must have (nothing else is read from a file).
ARRAY_DTYPES = {
    "feature": "<i8",
    "threshold": "<f8",
    "left": "<i8",
    "right": "<i8",
    "missing_left": "|u1",
    "value": "<f8",
    "roots": "<i8",
    "init": "<f8",
}
HEADER_LENGTH = struct.Struct("<Q")
# The header's fields besides the arrays, and the values each may take.
HEADER_FIELDS = ("estimator", "kind", "classes", "n_features", "feature_names", "cast", "link", "decision")
HEADER_FIELDS += ("raw_order", "allow_nan")
CHOICES = {
    "kind": (FOREST, BOOSTING),
    "cast": (CAST_FLOAT32, CAST_FLOAT64),
    "link": (IDENTITY, LOGIT, HALF_LOGIT, SOFTMAX, LOG),
    "decision": ("argmax", ">=", ">"),
    "raw_order": ("C", "F"),
}


class RowAnswer(NamedTuple):
    """One row's answer: a classifier's label and probabilities, or a regressor's value."""

    label: Any
    probabilities: tuple[float, ...] | None
    value: float | None


@dataclass(frozen=True)
class Contributions:
    """Why one row got its answer: ``bias + sum(values) == answer`` (to rounding).

    ``output`` is the explained class (classifiers) or None; ``space`` says whether the numbers
    are that class's probability or the regression value.
    """

    output: Any
    answer: float
    bias: float
    values: tuple[float, ...]
    space: str

    def as_dict(self, features: Sequence[str]) -> dict:
        """JSON-ready, with each contribution under its feature's name."""
        return {
            "output": self.output,
            "space": self.space,
            "answer": self.answer,
            "bias": self.bias,
            "contributions": dict(zip(features, self.values, strict=True)),
        }


def _expit(raw: np.ndarray) -> np.ndarray:
    from scipy.special import expit  # scikit-learn's own expit for numpy input

    return expit(raw)


def _softmax(raw: np.ndarray) -> np.ndarray:
    """scikit-learn's ``utils.extmath.softmax`` step by step (same calls, same memory layout)."""
    X = np.asarray(raw, copy=True)
    X -= np.reshape(np.max(X, axis=1), (-1, 1))
    np.exp(X, out=X)
    X /= np.reshape(np.sum(X, axis=1), (-1, 1))
    return X


def _binary_link(link: str, raw: np.ndarray) -> np.ndarray:
    """The positive class's probability from one raw score per row."""
    return _expit(2 * raw) if link == HALF_LOGIT else _expit(raw)


class CompiledEnsemble:
    """The flattened trees of one fitted ensemble and what to do with their leaves.

    Node arrays hold every tree back to back (global indices, ``left == -1`` at leaves);
    ``value`` is each node's value: class fractions for a forest classifier, the mean for a forest
    regressor, the scaled leaf value for boosting (tree ``t`` adds to raw column ``t % n_outputs``).
    """

    def __init__(
        self,
        *,
        estimator: str,
        kind: str,
        classes: Sequence[Any] | None,
        n_features: int,
        feature_names: Sequence[str] | None,
        cast: str,
        link: str,
        decision: str,
        raw_order: str,
        allow_nan: bool,
        feature: np.ndarray,
        threshold: np.ndarray,
        left: np.ndarray,
        right: np.ndarray,
        missing_left: np.ndarray,
        value: np.ndarray,
        roots: np.ndarray,
        init: np.ndarray,
        table_bytes_limit: int = TABLE_BYTES_LIMIT,
    ) -> None:
        self.estimator = estimator
        self.kind = kind
        self.classes = None if classes is None else list(classes)
        self.n_features = int(n_features)
        self.feature_names = None if feature_names is None else [str(name) for name in feature_names]
        self.cast, self.link, self.decision, self.raw_order = cast, link, decision, raw_order
        self.allow_nan = bool(allow_nan)
        self.feature = np.ascontiguousarray(feature, dtype=np.int64)
        self.threshold = np.ascontiguousarray(threshold, dtype=np.float64)
        self.left = np.ascontiguousarray(left, dtype=np.int64)
        self.right = np.ascontiguousarray(right, dtype=np.int64)
        self.missing_left = np.ascontiguousarray(missing_left, dtype=np.uint8)
        self.value = np.ascontiguousarray(value, dtype=np.float64)
        if self.value.ndim == 1:
            self.value = self.value[:, None]
        self.roots = np.ascontiguousarray(roots, dtype=np.int64)
        self.init = np.ascontiguousarray(init, dtype=np.float64)
        self.table_bytes_limit = int(table_bytes_limit)
        self._check()
        self.is_classifier = self.classes is not None
        self.n_trees = len(self.roots)
        self.n_outputs = len(self.init)  # raw columns: classes of a forest, trees per stage
        self._labels = None if self.classes is None else np.asarray(self.classes)
        # Which tree each node belongs to, and each tree's raw column (boosting).
        sizes = np.diff(np.append(self.roots, len(self.left)))
        self.node_tree = np.repeat(np.arange(self.n_trees), sizes)
        self.tree_output = np.arange(self.n_trees) % self.n_outputs
        self.depth = self._depths()
        # Plain lists for the one-row walk: list indexing beats numpy scalar access.
        self._feature_list = np.where(self.left == LEAF, LEAF, self.feature).tolist()
        self._threshold_list = self.threshold.tolist()
        self._left_list = self.left.tolist()
        self._right_list = self.right.tolist()
        self._missing_left_list = self.missing_left.astype(bool).tolist()
        self._root_list = self.roots.tolist()
        # Each node's values as one item (a void of all its columns), so that one take gathers
        # every class of a leaf; viewed back as float64 for the sums.
        self._items = self.value.view(np.dtype((np.void, self.value.itemsize * self.value.shape[1])))[:, 0]
        self._walk_places = [(0, t) for t in range(self.n_trees)]
        # One-row sums: a start row (zeros, or boosting's init) then the leaves' values, so that
        # one take and one accumulate add them in the batch's order.
        if self.kind == FOREST:
            self._row_values = np.concatenate((self.value, np.zeros((1, self.n_outputs))))
            self._row_start = [len(self.value)]
        else:
            self._row_values = np.concatenate((self.value[:, 0], self.init))
            self._row_start = list(range(len(self.value), len(self.value) + self.n_outputs))

    # --- construction ----------------------------------------------------------------------------

    def _check(self) -> None:
        """Known settings, every index in range and every tree a tree, so that no walk can leave
        its arrays (a saved file is checked as strictly as a fresh one)."""
        for name, allowed in CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"unknown {name} {getattr(self, name)!r}")
        if self.n_features < 1 or (self.feature_names is not None and len(self.feature_names) != self.n_features):
            raise ValueError("the feature names do not match the number of features")
        n = len(self.left)
        same = (self.feature, self.threshold, self.right, self.missing_left, self.value)
        if n == 0 or any(len(a) != n for a in same) or self.value.ndim != 2 or self.roots.ndim != 1:
            raise ValueError("the ensemble's node arrays differ in length")
        if len(self.roots) == 0 or self.roots[0] != 0 or np.any(np.diff(self.roots) <= 0) or self.roots[-1] >= n:
            raise ValueError("the ensemble's tree roots are not increasing node indices")
        if len(self.init) == 0 or (self.kind == BOOSTING and len(self.roots) % len(self.init)):
            raise ValueError("a boosted ensemble needs the same number of trees for every output")
        if self.kind == FOREST and self.value.shape[1] != len(self.init):
            raise ValueError("a forest's node values must have one column per output")
        if self.kind == BOOSTING and self.value.shape[1] != 1:
            raise ValueError("a boosted tree's node values must have one column")
        internal = self.left != LEAF
        nodes = np.arange(n)
        tree_end = np.repeat(np.append(self.roots[1:], n), np.diff(np.append(self.roots, n)))
        for child in (self.left[internal], self.right[internal]):
            # Children come after their parent and inside its tree: walks move forward and stop.
            if np.any(child <= nodes[internal]) or np.any(child >= tree_end[internal]):
                raise ValueError("a node's child lies outside its tree")
        if np.any(self.right[~internal] != LEAF):
            raise ValueError("a leaf has a right child")
        if np.any(self.feature[internal] < 0) or np.any(self.feature[internal] >= self.n_features):
            raise ValueError("a split names a feature the model does not have")
        if self.classes is not None and len(self.classes) < 2:
            raise ValueError("a classifier needs at least two classes")

    def _depths(self) -> int:
        """The deepest leaf's depth over all trees (levels below a root), level by level."""
        depth, level = 0, self.roots
        while True:
            level = level[self.left[level] != LEAF]
            if not len(level):
                return depth
            depth += 1
            level = np.concatenate((self.left[level], self.right[level]))

    @classmethod
    def from_estimator(cls, estimator: Any, *, table_bytes_limit: int = TABLE_BYTES_LIMIT) -> CompiledEnsemble:
        """Flatten one of the eight supported ensembles; NotCompilable for anything else.

        The result is checked against the estimator on rows built on its thresholds (and NaNs
        where it accepts them): a mismatch is refused rather than served.
        """
        from modeler.ensemble_export import flatten

        compiled = cls(**flatten(estimator), table_bytes_limit=table_bytes_limit)
        compiled._check_against(estimator)
        return compiled

    def _check_against(self, estimator: Any) -> None:
        from modeler.ensemble_export import estimator_answers, probe_rows

        X = probe_rows(self, seed=0)
        expected = estimator_answers(estimator, X)
        got = [self.predict(X)] + ([self.predict_proba(X)] if self.is_classifier else [])
        for name, want, have in zip(("predict", "predict_proba"), expected, got, strict=False):
            if not np.array_equal(want, have):
                raise NotCompilable(f"the compiled {name} differs from {self.estimator}'s: not served compiled")

    # --- saving ----------------------------------------------------------------------------------

    def _arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in ARRAY_DTYPES}

    def to_bytes(self) -> bytes:
        """A JSON header, then each array's raw little-endian bytes (8-byte aligned)."""
        blobs, entries, offset = [], {}, 0
        for name, array_ in self._arrays().items():
            data = np.ascontiguousarray(array_, dtype=ARRAY_DTYPES[name]).tobytes()
            entries[name] = {"dtype": ARRAY_DTYPES[name], "shape": list(array_.shape), "offset": offset}
            pad = -len(data) % 8
            blobs.append(data + b"\0" * pad)
            offset += len(data) + pad
        header = {
            "format": FORMAT,
            "estimator": self.estimator,
            "kind": self.kind,
            "classes": self.classes,
            "n_features": self.n_features,
            "feature_names": self.feature_names,
            "cast": self.cast,
            "link": self.link,
            "decision": self.decision,
            "raw_order": self.raw_order,
            "allow_nan": self.allow_nan,
            "arrays": entries,
        }
        encoded = json.dumps(header).encode()
        return MAGIC + HEADER_LENGTH.pack(len(encoded)) + encoded + b"".join(blobs)

    @classmethod
    def from_bytes(cls, data: bytes, *, table_bytes_limit: int = TABLE_BYTES_LIMIT) -> CompiledEnsemble:
        """The ensemble :meth:`to_bytes` wrote; ValueError when ``data`` is not one."""
        if not data.startswith(MAGIC) or len(data) < len(MAGIC) + HEADER_LENGTH.size:
            raise ValueError(f"not a {FORMAT} file")
        start = len(MAGIC) + HEADER_LENGTH.size
        (length,) = HEADER_LENGTH.unpack_from(data, len(MAGIC))
        try:
            header = json.loads(data[start : start + length])
        except ValueError as exc:
            raise ValueError(f"not a {FORMAT} file: unreadable header") from exc
        if not isinstance(header, dict) or header.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} file")
        body = memoryview(data)[start + length :]
        try:
            arrays = {name: _read_array(body, header["arrays"], name) for name in ARRAY_DTYPES}
            fields = {name: header[name] for name in HEADER_FIELDS}
        except (KeyError, TypeError) as exc:
            raise ValueError(f"not a {FORMAT} file: {exc}") from exc
        return cls(**fields, **arrays, table_bytes_limit=table_bytes_limit)

    # --- inputs ----------------------------------------------------------------------------------

    def _field(self, column: int) -> str:
        return self.feature_names[column] if self.feature_names else f"x{column}"

    def _prepared(self, X: Any) -> np.ndarray:
        """Rows as scikit-learn compares them (float32 values held as float64, or float64), after
        the checks it makes: the shape; for float32 models finite values, NaN only if accepted
        (HistGradientBoosting takes inf and NaN as they are)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            problem = f"expected rows of {self.n_features} features, got shape {X.shape}"
            raise InvalidInput([FieldError(None, None, problem)])
        if self.cast != CAST_FLOAT32:
            return X
        with np.errstate(over="ignore"):  # past float32's range is inf, refused below as sklearn does
            X = X.astype(np.float32).astype(np.float64)
        bad = np.isinf(X) if self.allow_nan else ~np.isfinite(X)
        if bad.any():
            rows, columns = np.nonzero(bad)
            cells = zip(rows[:100].tolist(), columns[:100].tolist(), strict=True)
            raise InvalidInput([FieldError(r, self._field(c), NOT_FINITE) for r, c in cells])
        return X

    def _prepared_row(self, row: Sequence[float]) -> list[float]:
        """One row as :meth:`_prepared` makes it, as a list (the one-row path)."""
        if len(row) != self.n_features:
            problem = f"expected {self.n_features} features, got {len(row)}"
            raise InvalidInput([FieldError(None, None, problem)])
        if self.cast != CAST_FLOAT32:
            return [float(v) for v in row]
        x = array("f", row).tolist()  # the float32 cast sklearn applies (inf past its range: refused)
        if not all(map(math.isfinite, x)):
            for column, v in enumerate(x):
                if math.isinf(v) or (v != v and not self.allow_nan):
                    raise InvalidInput([FieldError(0, self._field(column), NOT_FINITE)])
        return x

    # --- leaves ----------------------------------------------------------------------------------

    @cached_property
    def _tables(self) -> LeafTables | None:
        """The bit-vector tables, built on the first batch; None past the memory limit."""
        from modeler.ensemble_tables import LeafTables

        return LeafTables.build(self, self.table_bytes_limit)

    def leaves(self, X: np.ndarray, *, walk: bool = False) -> np.ndarray:
        """Each row's leaf (global node index) in each tree for prepared rows, shape (rows, trees);
        ``walk`` forces the level walk (the bit vectors' fallback)."""
        tables = None if walk else self._tables
        if tables is not None:
            return tables.leaves(X)
        return self._walk_levels(X)

    def _walk_levels(self, X: np.ndarray) -> np.ndarray:
        """All trees at once, level by level; a leaf steps to itself, so every row takes the
        deepest tree's number of steps with no masks."""
        n = len(X)
        nodes = np.arange(len(self.left))
        is_leaf = self.left == LEAF
        step_feature = np.where(is_leaf, 0, self.feature)
        step_left = np.where(is_leaf, nodes, self.left)
        step_right = np.where(is_leaf, nodes, self.right)
        with_nan = self.allow_nan and bool(np.isnan(X).any())
        flat = np.ascontiguousarray(X).ravel()
        offsets = (np.arange(n, dtype=np.int64) * self.n_features)[:, None]
        node = np.broadcast_to(self.roots, (n, self.n_trees)).copy()
        for _ in range(self.depth):
            values = flat.take(offsets + step_feature.take(node))
            go_left = values <= self.threshold.take(node)
            if with_nan:
                go_left = np.where(np.isnan(values), self.missing_left.take(node).astype(bool), go_left)
            node = np.where(go_left, step_left.take(node), step_right.take(node))
        return node

    def _leaves_of_row(self, x: Sequence[float]) -> list[int]:
        """Each tree's leaf for one prepared row, walked in Python."""
        feature, threshold, left, right = self._feature_list, self._threshold_list, self._left_list, self._right_list
        leaves = []
        if self.allow_nan and any(v != v for v in x):
            missing_left = self._missing_left_list
            for node in self._root_list:
                while (f := feature[node]) >= 0:
                    v = x[f]
                    go_left = missing_left[node] if v != v else v <= threshold[node]
                    node = left[node] if go_left else right[node]
                leaves.append(node)
            return leaves
        walker = self._row_walker
        if walker is not None:
            return walker(x)
        for node in self._root_list:
            while (f := feature[node]) >= 0:
                node = left[node] if x[f] <= threshold[node] else right[node]
            leaves.append(node)
        return leaves

    def prepare_one_row(self) -> None:
        """Build the one-row walk now, so that a loaded version's first row is as fast as the next."""
        if self._row_summer is None:
            _ = self._row_walker

    @cached_property
    def _row_summer(self) -> RowSummer | None:
        """One row's sums as generated code, each leaf adding its values (modeler/ensemble_walk.py);
        None where the walk to the leaves and numpy's sums stay."""
        from modeler.ensemble_walk import row_summer

        values = self.value.tolist()
        if self.kind == FOREST:
            starts = [0.0] * self.n_outputs

            def leaf_adds(tree: int, leaf: int) -> list[tuple[int, float]]:
                return list(enumerate(values[leaf]))  # every class's fraction
        else:
            starts = self.init.tolist()
            outputs = self.tree_output.tolist()

            def leaf_adds(tree: int, leaf: int) -> list[tuple[int, float]]:
                return [(outputs[tree], values[leaf][0])]  # tree t adds to raw column t % n_outputs

        return row_summer(self._walk_trees, starts, leaf_adds)

    @cached_property
    def _row_walker(self) -> RowWalker | None:
        """The one-row walk as generated code (modeler/ensemble_walk.py); None where the flat
        walk stays."""
        from modeler.ensemble_walk import row_walker

        return row_walker(self._walk_trees)

    @property
    def _walk_trees(self) -> Trees:
        """The trees as the generated walks read them (modeler/ensemble_walk.py)."""
        from modeler.ensemble_walk import Trees

        lists = (self._feature_list, self._threshold_list, self._left_list, self._right_list, self._root_list)
        return Trees(*lists, self.n_features, self.depth)

    def path_of(self, x: Sequence[float], tree: int) -> list[int]:
        """The nodes from one tree's root to its leaf for a prepared row (as the walk goes)."""
        node, path = self._root_list[tree], []
        while True:
            path.append(node)
            f = self._feature_list[node]
            if f < 0:
                return path
            v = x[f]
            go_left = self._missing_left_list[node] if v != v else v <= self._threshold_list[node]
            node = self._left_list[node] if go_left else self._right_list[node]

    # --- answers ---------------------------------------------------------------------------------

    @cached_property
    def _group_items(self) -> list[np.ndarray]:
        """Per bit-vector group, its leaves' values as items (see ``_items``), in leaf order."""
        return [self._items.take(group.leaf_nodes) for group in self._tables.groups]

    def _tree_values(self, X: np.ndarray, walk: bool) -> tuple[list[np.ndarray], list[tuple[int, int]]]:
        """The trees' values for prepared rows, in row blocks: per part of the trees, an array
        (blocks, trees of the part, BLOCK_ROWS, values); and each tree's (part, index)."""
        tables = None if walk else self._tables
        blocks = -(-len(X) // BLOCK_ROWS)
        if tables is None:
            nodes = np.empty((blocks * BLOCK_ROWS, self.n_trees), dtype=np.int64)
            nodes[: len(X)] = self._walk_levels(X)
            nodes[len(X) :] = self.roots  # padding: any valid node
            parts = [self._items.take(nodes.reshape(blocks, BLOCK_ROWS, self.n_trees).transpose(0, 2, 1))]
            places = self._walk_places
        else:
            positions = tables.positions(X)
            parts = [items.take(p) for items, p in zip(self._group_items, positions, strict=True)]
            places = tables.places
        n_values = self.value.shape[1]
        return [part.view(np.float64).reshape(*part.shape, n_values) for part in parts], places

    def _raw(self, parts: list[np.ndarray], places: list[tuple[int, int]], n: int) -> np.ndarray:
        """Sums of the trees' values in scikit-learn's order, shape (rows, outputs): a forest's
        mean, boosting's init plus every stage. Each sum starts where scikit-learn's starts
        (zeros, or the init) and adds the trees one by one; boosting's sums come out in the memory
        order scikit-learn's have (``raw_order``), so that the link sums alike."""
        blocks = parts[0].shape[0]
        if self.kind == FOREST:
            total = np.zeros((blocks, BLOCK_ROWS, self.n_outputs))
            for part, i in places:  # every class at once: each element is its own sum
                total += parts[part][:, i]
            total /= self.n_trees
            return total.reshape(-1, self.n_outputs)[:n]
        sums = np.empty((self.n_outputs, blocks, BLOCK_ROWS))
        for k in range(self.n_outputs):
            total = sums[k]
            total[:] = self.init[k]
            for t in range(k, self.n_trees, self.n_outputs):  # stage-major: every n_outputs-th tree
                part, i = places[t]
                total += parts[part][:, i, :, 0]
        sums = sums.reshape(self.n_outputs, -1)[:, :n]
        return sums.T if self.raw_order == "F" else np.ascontiguousarray(sums.T)

    def _linked(self, raw: np.ndarray) -> np.ndarray:
        """Probabilities (classifiers, shape (rows, classes)) or values (regressors, (rows,))."""
        if self.kind == FOREST:
            return raw if self.is_classifier else raw[:, 0]
        if not self.is_classifier:
            return np.exp(raw[:, 0]) if self.link == LOG else raw[:, 0]
        if self.link == SOFTMAX:
            # HistGradientBoosting sums into a Fortran-ordered array: the same layout, the same sums.
            return _softmax(np.asfortranarray(raw) if self.raw_order == "F" else raw)
        proba = np.empty((len(raw), 2))
        proba[:, 1] = _binary_link(self.link, raw[:, 0])
        proba[:, 0] = 1 - proba[:, 1]
        return proba

    def _decided(self, raw: np.ndarray, answers: np.ndarray) -> np.ndarray:
        """Class indices: argmax of a forest's probabilities or of boosting's raw scores, and
        boosting's binary threshold on its one raw score."""
        if self.kind == FOREST:
            return np.argmax(answers, axis=1)
        if self.n_outputs == 1:
            return (raw[:, 0] >= 0 if self.decision == ">=" else raw[:, 0] > 0).astype(int)
        return np.argmax(raw, axis=1)

    def _answers(self, X: Any, *, walk: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(raw sums, linked answers) for a batch, chunk by chunk (each row is independent)."""
        X = self._prepared(X)
        raws, linked = [], []
        for start in range(0, max(len(X), 1), CHUNK_ROWS):
            chunk = X[start : start + CHUNK_ROWS]
            raw = self._raw(*self._tree_values(chunk, walk), len(chunk))
            raws.append(raw)
            linked.append(self._linked(raw))
        return np.concatenate(raws), np.concatenate(linked)

    def predict(self, X: Any, *, walk: bool = False) -> np.ndarray:
        """Labels (classifiers) or values (regressors), as the estimator's ``predict``."""
        raw, answers = self._answers(X, walk=walk)
        if not self.is_classifier:
            return answers
        return self._labels.take(self._decided(raw, answers))

    def predict_with_proba(self, X: Any, *, walk: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """``(predict(X), predict_proba(X))`` from one pass over the trees; classifiers only."""
        if not self.is_classifier:
            raise TypeError(f"{self.estimator} is a regressor: it has no probabilities")
        raw, answers = self._answers(X, walk=walk)
        return self._labels.take(self._decided(raw, answers)), answers

    def predict_proba(self, X: Any, *, walk: bool = False) -> np.ndarray:
        """Class probabilities, as the estimator's ``predict_proba``; classifiers only."""
        if not self.is_classifier:
            raise TypeError(f"{self.estimator} is a regressor: it has no probabilities")
        return self._answers(X, walk=walk)[1]

    def _row_sums(self, x: Sequence[float]) -> list[float] | None:
        """One prepared row's raw sums by the generated code (a forest's divided by its trees, in
        Python's IEEE floats as numpy divides), in the batch's order of additions; None for a row
        with a missing value or without that code."""
        summer = self._row_summer
        if summer is None or (self.allow_nan and any(v != v for v in x)):
            return None
        sums = summer(x)
        if self.kind == FOREST:
            n = self.n_trees
            return [v / n for v in sums]
        return sums

    def _row_raw(self, x: Sequence[float]) -> np.ndarray:
        """One row's sums, shape (1, outputs), added in the batch's order (accumulate is
        sequential by definition)."""
        sums = self._row_sums(x)
        if sums is not None:
            return np.array([sums])
        steps = np.array(self._row_start + self._leaves_of_row(x))
        if self.kind == FOREST:
            return np.add.accumulate(self._row_values.take(steps, axis=0), axis=0)[-1:] / self.n_trees
        stages = self._row_values.take(steps).reshape(-1, self.n_outputs)  # init, then stage by stage
        return np.add.accumulate(stages, axis=0)[-1:]

    def predict_one(self, row: Sequence[float]) -> RowAnswer:
        """One row (floats in feature order): the same answer as a batch, without numpy's
        per-batch work."""
        x = self._prepared_row(row)
        if self.kind == FOREST:  # a forest's answer is its mean: the raw sums themselves
            answers = self._row_sums(x)
            if answers is None:
                answers = self._row_raw(x)[0].tolist()
            if not self.is_classifier:
                return RowAnswer(None, None, answers[0])
            return RowAnswer(self.classes[answers.index(max(answers))], tuple(answers), None)  # argmax
        raw = self._row_raw(x)
        answers = self._linked(raw)
        if not self.is_classifier:
            return RowAnswer(None, None, float(answers[0]))
        index = int(self._decided(raw, answers)[0])
        return RowAnswer(self.classes[index], tuple(answers[0].tolist()), None)

    # --- explanations ----------------------------------------------------------------------------

    def raw_contributions(self, row: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Saabas contributions in the sum's own space: (bias, per-feature contributions, raw)
        with shapes (outputs,), (features, outputs), (outputs,); bias + contributions == raw.

        A forest's space is its answer (probabilities or value); boosting's is the raw score.
        """
        x = self._prepared_row(row)
        parents, children = [], []
        for tree in range(self.n_trees):
            path = self.path_of(x, tree)
            parents.extend(path[:-1])
            children.extend(path[1:])
        contributions = np.zeros((self.n_features, self.n_outputs))
        steps = self.value[children] - self.value[parents]  # (splits, values)
        features = self.feature[parents]
        if self.kind == FOREST:
            np.add.at(contributions, features, steps)
            contributions /= self.n_trees
            bias = self.value[self.roots].sum(axis=0) / self.n_trees
        else:
            np.add.at(contributions, (features, self.tree_output[self.node_tree[parents]]), steps[:, 0])
            bias = self.init + np.bincount(self.tree_output, self.value[self.roots, 0], minlength=self.n_outputs)
        return bias, contributions, self._row_raw(x)[0]

    def contributions(self, row: Sequence[float], output: int | None = None) -> Contributions:
        """Each feature's contribution to one answer: the predicted class's probability (or class
        index ``output``'s), or the regression value. ``bias + sum(values) == answer``."""
        bias, raw_contributions, raw = self.raw_contributions(row)
        answers = self._linked(raw[None, :])[0]
        if not self.is_classifier:
            shares, base = self._value_shares(bias, raw_contributions, raw, answers)
            return Contributions(None, float(answers), float(base), tuple(shares.tolist()), VALUE)
        k = int(self._decided(raw[None, :], answers[None, :])[0]) if output is None else int(output)
        if self.kind == FOREST:
            shares, base = raw_contributions[:, k], bias[k]
        elif self.n_outputs == 1:
            shares, base = self._binary_shares(bias[0], raw_contributions[:, 0], raw[0], k)
        else:
            shares, base = self._softmax_shares(bias, raw_contributions, raw, answers, k)
        return Contributions(self.classes[k], float(answers[k]), float(base), tuple(shares.tolist()), PROBABILITY)

    def _value_shares(
        self, bias: np.ndarray, contributions: np.ndarray, raw: np.ndarray, answer: float
    ) -> tuple[np.ndarray, float]:
        """A regressor's value: the raw contributions, or for the log link their secant shares."""
        if self.link != LOG:
            return contributions[:, 0], float(bias[0])
        base = math.exp(bias[0])
        return contributions[:, 0] * _secant(math.exp, bias[0], raw[0], base, float(answer)), base

    def _binary_shares(self, bias: float, contributions: np.ndarray, raw: float, k: int) -> tuple[np.ndarray, float]:
        """Class 1's probability is link(raw); class 0's is 1 - link(raw), with opposite shares."""

        def link(z: float) -> float:
            return float(_binary_link(self.link, np.array([z]))[0])

        base, answer = link(bias), link(raw)
        shares = contributions * _secant(link, bias, raw, base, answer)
        return (shares, base) if k == 1 else (-shares, 1 - base)

    def _softmax_shares(
        self, bias: np.ndarray, contributions: np.ndarray, raw: np.ndarray, answers: np.ndarray, k: int
    ) -> tuple[np.ndarray, float]:
        """Integrated gradients of softmax_k on the line bias -> raw, corrected to sum exactly."""
        base = float(_softmax(bias[None, :])[0, k])
        delta = raw - bias
        nodes, weights = np.polynomial.legendre.leggauss(QUADRATURE_NODES)
        points = bias[None, :] + ((nodes + 1) / 2)[:, None] * delta[None, :]
        p = _softmax(points)
        gradients = p[:, [k]] * (np.eye(self.n_outputs)[k][None, :] - p)  # d softmax_k / d z
        gradient = (weights / 2) @ gradients
        norm = float(delta @ delta)
        if norm > 0:  # make gradient . delta equal the probability change exactly
            gradient = gradient + ((answers[k] - base) - float(gradient @ delta)) * delta / norm
        return contributions @ gradient, base


def _secant(link: Any, low: float, high: float, at_low: float, at_high: float) -> float:
    """The link's average slope between two raw scores (its derivative where they meet)."""
    if high != low:
        return (at_high - at_low) / (high - low)
    step = 1e-6 * max(1.0, abs(low))
    return (link(low + step) - link(low - step)) / (2 * step)


def _read_array(body: memoryview, entries: dict, name: str) -> np.ndarray:
    """One saved array, checked against its declared dtype, shape and place in the body."""
    entry = entries.get(name) if isinstance(entries, dict) else None
    if not isinstance(entry, dict) or entry.get("dtype") != ARRAY_DTYPES[name]:
        raise ValueError(f"the saved array {name!r} is missing or of another dtype")
    shape, offset = entry.get("shape"), entry.get("offset")
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape) or len(shape) > 2:
        raise ValueError(f"the saved array {name!r} has no valid shape")
    dtype = np.dtype(ARRAY_DTYPES[name])
    size = math.prod(shape) * dtype.itemsize
    if not isinstance(offset, int) or offset < 0 or offset + size > len(body):
        raise ValueError(f"the saved array {name!r} lies outside the file")
    return np.frombuffer(body, dtype=dtype, count=math.prod(shape), offset=offset).reshape(shape)
