"""One row through every tree of an ensemble, as generated Python: each tree's splits written out
as nested ``if``/``else`` on local variables, compiled once per loaded version.

Two forms: :func:`row_summer` adds each leaf's values to the row's sums where the walk reaches
the leaf (the one-row answer), and :func:`row_walker` returns the leaves (its fallback where the
sums' code would be too large). The flat-list walk (``CompiledEnsemble._leaves_of_row``) pays
four list look-ups and a loop test per split; written out, a split is one comparison of a local
with a constant. For the tutorial's 100-tree forest (about 10,000 nodes, depth 14) the leaves
take 2.6x less time, and the sums answer one row in 9 µs instead of 21 µs (44 µs instead of 117
µs with cold caches), for a compile of about 0.1 s when the version is first asked for one row (a
server's warm-up does it, before the workers fork).

The comparisons are the flat walk's, on the same prepared values: ``x[f] <= threshold``, with
each threshold and leaf value written so that it reads back exactly and each leaf as its global
node index, so the leaves and the sums are the same. The source holds only those integers and
floats, generated from the arrays that :mod:`modeler.compiled_ensemble` checked on load, never
text from a file. Rows with a missing value keep the flat walk (a NaN follows each node's own
``missing_go_to_left``), and so does an ensemble too large to compile quickly or too deep for
Python's block nesting.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

# Past these, the flat walk stays: compiling costs about 30 µs a node, and Python's parser
# refuses more than 100 nested blocks.
MAX_NODES = 60_000
MAX_DEPTH = 90


class Trees(NamedTuple):
    """An ensemble's flattened trees, as the walks read them: ``feature`` is -1 at a leaf;
    ``left`` and ``right`` are global node indices; ``roots`` the first node of each tree."""

    feature: Sequence[int]
    threshold: Sequence[float]
    left: Sequence[int]
    right: Sequence[int]
    roots: Sequence[int]
    n_features: int
    depth: int


RowWalker = Callable[[Sequence[float]], list[int]]
RowSummer = Callable[[Sequence[float]], list[float]]
# (output column, value) pairs a leaf adds to the row's sums.
LeafAdds = Callable[[int, int], Sequence[tuple[int, float]]]


def row_walker(trees: Trees) -> RowWalker | None:
    """A function giving each tree's leaf (global node index) for one prepared row without
    missing values, or None when the ensemble is too large or deep for it."""
    if not _compilable(trees, len(trees.feature)):
        return None
    lines = ["    out = []", "    append = out.append"]
    for root in trees.roots:
        _emit(lines, root, 1, trees, lambda node, pad: [f"{pad}append({node})"])
    lines.append("    return out")
    return _compiled("leaves", trees.n_features, lines)  # type: ignore[return-value]


def row_summer(trees: Trees, starts: Sequence[float], leaf_adds: LeafAdds) -> RowSummer | None:
    """A function giving one prepared row's sums (one per output column) without missing values:
    each sum begins at ``starts[k]`` and, tree by tree in order, adds what ``leaf_adds(tree,
    leaf)`` gives for the leaf the row reaches. None when the ensemble is too large or deep.

    The same additions in the same order as the batch's sums, so the same floats; but each leaf's
    values are constants next to its splits, where a walk that returns leaves sends numpy to
    gather them from a table. In a server, between two requests, other work evicts that table
    and numpy's own code from the CPU's caches: for the tutorial's forest one row took 117 µs
    that way with cold caches (21 µs warm) and 42 µs of it was the walk.
    """
    adds = [
        [(t, leaf, leaf_adds(t, leaf)) for leaf in _leaves_under(root, trees)] for t, root in enumerate(trees.roots)
    ]
    statements = len(trees.feature) + sum(len(a) for tree in adds for _, _, a in tree)
    if not _compilable(trees, statements):
        return None
    names = [f"s{k}" for k in range(len(starts))]
    lines = [f"    {name} = {_literal(float(start))}" for name, start in zip(names, starts, strict=True)]
    for t, root in enumerate(trees.roots):
        table = {leaf: a for _, leaf, a in adds[t]}

        def leaf_lines(node: int, pad: str, table: dict = table) -> list[str]:
            return [f"{pad}{names[k]} += {_literal(float(v))}" for k, v in table[node]] or [f"{pad}pass"]

        _emit(lines, root, 1, trees, leaf_lines)
    lines.append(f"    return [{', '.join(names)}]")
    return _compiled("sums", trees.n_features, lines)  # type: ignore[return-value]


def _compilable(trees: Trees, size: int) -> bool:
    if size > MAX_NODES or trees.depth > MAX_DEPTH or trees.n_features < 1:
        return False
    return not any(math.isnan(t) for t, f in zip(trees.threshold, trees.feature, strict=True) if f >= 0)


def _leaves_under(root: int, trees: Trees) -> list[int]:
    leaves, stack = [], [root]
    while stack:
        node = stack.pop()
        if trees.feature[node] < 0:
            leaves.append(node)
        else:
            stack += (trees.left[node], trees.right[node])
    return leaves


def _emit(lines: list[str], node: int, indent: int, trees: Trees, leaf_lines: Callable[[int, str], list[str]]) -> None:
    """One tree's splits from ``node`` as nested if/else on the row's locals ``x0``, ``x1``, ..."""
    pad = "    " * indent
    f = trees.feature[node]
    if f < 0:
        lines.extend(leaf_lines(node, pad))
        return
    lines.append(f"{pad}if x{f} <= {_literal(float(trees.threshold[node]))}:")
    _emit(lines, trees.left[node], indent + 1, trees, leaf_lines)
    lines.append(f"{pad}else:")
    _emit(lines, trees.right[node], indent + 1, trees, leaf_lines)


def _compiled(name: str, n_features: int, body: list[str]) -> Callable:
    names = ", ".join(f"x{i}" for i in range(n_features))
    source = "\n".join([f"def {name}(x):", f"    {names}, = x", *body])
    namespace: dict[str, object] = {}
    # The source holds only integers and float reprs made above: nothing from a file is run.
    exec(compile(source, f"<ensemble row {name}>", "exec"), namespace)
    return namespace[name]  # type: ignore[return-value]


def _literal(value: float) -> str:
    """A float as Python source that reads back as exactly it (an infinity as an overflowing
    literal: a forest trained with missing values splits at +inf)."""
    if math.isinf(value):
        return "1e999" if value > 0 else "-1e999"
    return repr(value)
