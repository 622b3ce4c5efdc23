"""Every tree's leaf for every row of a batch at once, with bit vectors (QuickScorer's idea).

Number each tree's leaves left to right. A split sends a row right exactly when its value is
above the threshold (or it is missing and the split sends missing values right); the leaves of
that split's left subtree are then out of reach. For one feature, the splits a value goes right
at are those whose threshold is below it, a prefix of the feature's sorted thresholds: so one
table row per "number of thresholds below", holding, per tree, the AND of those splits' masks,
gives in one lookup the leaves each tree still allows; one more row serves missing values. The
AND over the features leaves exactly the leaves consistent with the row, and the exit leaf is the
lowest bit left: the leftmost consistent leaf is the one the walk reaches.

Trees are grouped by how many 64-bit words their leaves need, so that a forest of small trees
pays one word per tree. Values are compared exactly as the walk compares them: the thresholds
are float64 and the rows are already cast (float32 held as float64) or float64; ``searchsorted``
counts the thresholds strictly below a value, which are the splits it goes right at.

Why the lowest bit is the walk's leaf: the walk's leaf is never cleared (every split above it on
the left side was passed to the left), and any leaf left of it is cleared by the split where the
two paths part (the walk went right there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from modeler.compiled_ensemble import CompiledEnsemble

LEAF = -1  # child index of a leaf, as scikit-learn's TREE_LEAF
WORD = 64
# Rows per step: the (rows x trees x words) temporaries stay small enough to live in the cache
# (and below malloc's mmap threshold, which would page-fault every fresh array).
BLOCK_ROWS = 512
# Trees per group: a group's tables (thresholds x trees x words) should fit in a core's cache.
GROUP_TREES = 128
ALL = np.uint64(0xFFFF_FFFF_FFFF_FFFF)


@dataclass(frozen=True)
class _Group:
    """Trees whose leaves fit in ``words`` 64-bit words, and their tables by feature."""

    trees: np.ndarray  # tree indices, in tree order
    words: int
    tables: dict[int, np.ndarray]  # feature -> (thresholds + 2, trees, words) uint64
    leaf_offsets: np.ndarray  # per tree: where its leaves start in ``leaf_nodes`` (int32)
    leaf_nodes: np.ndarray  # global node index of each leaf, tree by tree, left to right


def _ones_below(bits: np.ndarray) -> np.ndarray:
    """Words with their lowest ``bits`` bits set (clipped to 0..64)."""
    bits = np.clip(bits, 0, WORD)
    shift = np.where(bits == 0, 0, WORD - bits).astype(np.uint64)
    return np.where(bits == 0, np.uint64(0), ALL >> shift)


def _exit_numbers(words: np.ndarray) -> np.ndarray:
    """One plus the index of the lowest set bit over the last axis's words, low word first (some
    bit is always set: the exit leaf stays reachable)."""
    # v ^ (v - 1) sets the lowest set bit and every bit below it; uint64 wraps at v == 0.
    if words.shape[-1] == 1:
        v = words[..., 0]
        return np.bitwise_count(v ^ (v - np.uint64(1)))
    number = np.zeros(words.shape[:-1], dtype=np.int32)
    for w in range(words.shape[-1] - 1, -1, -1):  # the lowest non-zero word decides: it comes last
        v = words[..., w]
        bit = np.bitwise_count(v ^ (v - np.uint64(1))).astype(np.int32) + WORD * w
        number = np.where(v != 0, bit, number)
    return number


class LeafTables:
    """The bit-vector tables of one :class:`CompiledEnsemble` (built by :meth:`build`)."""

    def __init__(self, thresholds: dict[int, np.ndarray], groups: list[_Group], n_trees: int, allow_nan: bool):
        self.thresholds = thresholds  # feature -> sorted distinct thresholds of its splits
        self.groups = groups
        self.n_trees = n_trees
        self.allow_nan = allow_nan
        # Where each tree is: (group, index in the group).
        self.places = [(0, 0)] * n_trees
        for g, group in enumerate(groups):
            for i, tree in enumerate(group.trees.tolist()):
                self.places[tree] = (g, i)

    @classmethod
    def build(cls, ensemble: CompiledEnsemble, byte_limit: int) -> LeafTables | None:
        """The tables, or None when they would take more than ``byte_limit`` bytes."""
        left, feature = ensemble.left, ensemble.feature
        internal = left != LEAF
        tree_of = ensemble.node_tree
        leaf_counts = np.bincount(tree_of[~internal], minlength=ensemble.n_trees)
        words = (leaf_counts + WORD - 1) // WORD
        thresholds = {
            int(f): np.unique(ensemble.threshold[internal & (feature == f)]) for f in np.unique(feature[internal])
        }
        # Size first, before any per-node work: one table per (group, feature it splits on).
        needed = 0
        for w in np.unique(words):
            in_group = np.isin(tree_of, np.flatnonzero(words == w)) & internal
            for f in np.unique(feature[in_group]):
                needed += (len(thresholds[int(f)]) + 2) * int(np.sum(words == w)) * int(w) * 8
        if needed > byte_limit:
            return None
        first_leaf, left_leaves = cls._leaf_order(ensemble)
        groups = []
        for w in np.unique(words).tolist():
            same = np.flatnonzero(words == w)
            for start in range(0, len(same), GROUP_TREES):
                trees = same[start : start + GROUP_TREES]
                groups.append(cls._group(ensemble, thresholds, trees, w, first_leaf, left_leaves))
        return cls(thresholds, groups, ensemble.n_trees, ensemble.allow_nan)

    @staticmethod
    def _leaf_order(ensemble: CompiledEnsemble) -> tuple[np.ndarray, np.ndarray]:
        """Per node: the left-to-right number (within its tree) of its subtree's first leaf, and
        its subtree's leaf count. Children come after parents, so one backward and one forward
        pass suffice."""
        left, right = ensemble.left.tolist(), ensemble.right.tolist()
        n = len(left)
        count = [1] * n
        for node in range(n - 1, -1, -1):
            if left[node] != LEAF:
                count[node] = count[left[node]] + count[right[node]]
        first = [0] * n
        for node in range(n):
            if left[node] != LEAF:
                first[left[node]] = first[node]
                first[right[node]] = first[node] + count[left[node]]
        return np.asarray(first, dtype=np.int64), np.asarray(count, dtype=np.int64)

    @staticmethod
    def _group(
        ensemble: CompiledEnsemble,
        thresholds: dict[int, np.ndarray],
        trees: np.ndarray,
        words: int,
        first_leaf: np.ndarray,
        count: np.ndarray,
    ) -> _Group:
        left, feature = ensemble.left, ensemble.feature
        local = np.full(ensemble.n_trees, -1, dtype=np.int64)
        local[trees] = np.arange(len(trees))
        in_group = local[ensemble.node_tree] >= 0
        splits = np.flatnonzero(in_group & (left != LEAF))
        # The mask of a split: every leaf but those of its left subtree, as `words` words.
        lo = first_leaf[left[splits]]
        hi = lo + count[left[splits]]
        starts = np.arange(words, dtype=np.int64) * WORD
        out_of_reach = _ones_below(hi[:, None] - starts) & ~_ones_below(lo[:, None] - starts)
        masks = ~out_of_reach  # (splits, words)
        tables = {}
        split_tree = local[ensemble.node_tree[splits]]
        split_feature = feature[splits]
        for f in np.unique(split_feature).tolist():
            on_f = split_feature == f
            t = thresholds[f]
            rows = len(t) + 2  # bins 0..len(t) by thresholds below the value, then missing
            table = np.full((rows, len(trees), words), ALL, dtype=np.uint64)
            # A value with k thresholds below it goes right at the splits whose threshold index
            # is < k: mark each split at k = index + 1, then AND-accumulate down the bins.
            at = np.searchsorted(t, ensemble.threshold[splits[on_f]]) + 1
            np.bitwise_and.at(table, (at, split_tree[on_f]), masks[on_f])
            table[: rows - 1] = np.bitwise_and.accumulate(table[: rows - 1], axis=0)
            # The missing row: the splits that send missing values right.
            goes_right = on_f & (ensemble.missing_left[splits] == 0)
            np.bitwise_and.at(table, (rows - 1, split_tree[goes_right]), masks[goes_right])
            tables[f] = table
        leaves = np.flatnonzero(in_group & (left == LEAF))
        # Leaves of each tree in left-to-right order, trees in group order.
        order = np.lexsort((first_leaf[leaves], local[ensemble.node_tree[leaves]]))
        leaf_nodes = leaves[order]
        per_tree = np.bincount(local[ensemble.node_tree[leaf_nodes]], minlength=len(trees))
        leaf_offsets = np.concatenate(([0], np.cumsum(per_tree)[:-1])).astype(np.int32)
        return _Group(trees, words, tables, leaf_offsets, leaf_nodes)

    def _bins(self, X: np.ndarray) -> dict[int, np.ndarray]:
        """Per feature: how many of its thresholds lie below each value (the missing row for NaN)."""
        columns = np.ascontiguousarray(X.T)
        bins = {}
        for f, t in self.thresholds.items():
            b = np.searchsorted(t, columns[f], side="left")
            if self.allow_nan:
                b[np.isnan(columns[f])] = len(t) + 1
            bins[f] = b
        return bins

    def positions(self, X: np.ndarray) -> list[np.ndarray]:
        """Per group: each tree's exit leaf for each row as an index into the group's
        ``leaf_nodes``, in blocks of BLOCK_ROWS rows: shape (blocks, group's trees, BLOCK_ROWS),
        the last block padded with valid leaves. Tree-major within a block, so that a tree's
        values for all rows are a few contiguous runs."""
        bins = self._bins(X)
        blocks = -(-len(X) // BLOCK_ROWS)
        out = []
        for group in self.groups:  # one group's tables at a time, while they are in the cache
            positions = np.empty((blocks, len(group.trees), BLOCK_ROWS), dtype=np.int32)
            before_first = (group.leaf_offsets - 1)[:, None]
            for block in range(blocks):
                start = block * BLOCK_ROWS
                n_rows = min(BLOCK_ROWS, len(X) - start)
                chunk = {f: bins[f][start : start + n_rows] for f in group.tables}
                numbers = self._group_exit_numbers(group, chunk, n_rows)  # (rows, trees), from 1
                np.add(numbers.T, before_first, out=positions[block, :, :n_rows])
                positions[block, :, n_rows:] = group.leaf_offsets[:, None]
            out.append(positions)
        return out

    def leaves(self, X: np.ndarray) -> np.ndarray:
        """Each row's leaf (global node index) in each tree, shape (rows, trees)."""
        out = np.empty((len(X), self.n_trees), dtype=np.int64)
        for group, positions in zip(self.groups, self.positions(X), strict=True):
            rows = positions.transpose(0, 2, 1).reshape(-1, len(group.trees))[: len(X)]
            out[:, group.trees] = group.leaf_nodes.take(rows)
        return out

    @staticmethod
    def _group_exit_numbers(group: _Group, bins: dict[int, np.ndarray], n_rows: int) -> np.ndarray:
        """One group's exit leaves for a few rows, numbered from 1 within each tree, (rows, trees)."""
        reach = part = None
        for f, table in group.tables.items():
            if reach is None:
                reach = table.take(bins[f], axis=0)  # (rows, trees, words)
                part = np.empty_like(reach)
            else:
                # mode="clip": take buffers ``out`` in the default mode; the bins are in range.
                reach &= table.take(bins[f], axis=0, out=part, mode="clip")
        if reach is None:  # trees of one leaf each
            return np.ones((n_rows, len(group.trees)), dtype=np.int32)
        return _exit_numbers(reach)
