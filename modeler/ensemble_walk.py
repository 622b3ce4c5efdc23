"""One row through every tree of an ensemble, as generated Python: each tree's splits written out
as nested ``if``/``else`` on local variables, compiled once per loaded version.

The flat-list walk (``CompiledEnsemble._leaves_of_row``) pays four list look-ups and a loop test
per split; written out, a split is one comparison of a local with a constant. For the
tutorial's 100-tree forest (about 10,000 nodes, depth 14) one row takes 2.6x less time, for a
compile of about 0.3 s when the version is first asked for one row (a server's warm-up does it,
before the workers fork).

The comparisons are the flat walk's, on the same prepared values: ``x[f] <= threshold``, with
each threshold written so that it reads back exactly and each leaf as its global node index, so the
leaves are the same. The source holds only those integers and floats, generated from the arrays
that :mod:`modeler.compiled_ensemble` checked on load, never text from a file. Rows with a
missing value keep the flat walk (a NaN follows each node's own ``missing_go_to_left``), and so
does an ensemble too large to compile quickly or too deep for Python's block nesting.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

# Past these, the flat walk stays: compiling costs about 30 µs a node, and Python's parser
# refuses more than 100 nested blocks.
MAX_NODES = 60_000
MAX_DEPTH = 90

RowWalker = Callable[[Sequence[float]], list[int]]


def row_walker(
    feature: Sequence[int],
    threshold: Sequence[float],
    left: Sequence[int],
    right: Sequence[int],
    roots: Sequence[int],
    n_features: int,
    depth: int,
) -> RowWalker | None:
    """A function giving each tree's leaf (global node index) for one prepared row without
    missing values, or None when the ensemble is too large or deep for it. ``feature`` is -1 at
    a leaf; ``left`` and ``right`` are global node indices."""
    if len(feature) > MAX_NODES or depth > MAX_DEPTH or n_features < 1:
        return None
    if any(math.isnan(t) for t, f in zip(threshold, feature, strict=True) if f >= 0):
        return None
    names = ", ".join(f"x{i}" for i in range(n_features))
    lines = ["def leaves(x):", f"    {names}, = x", "    out = []", "    append = out.append"]

    def emit(node: int, indent: int) -> None:
        pad = "    " * indent
        f = feature[node]
        if f < 0:
            lines.append(f"{pad}append({node})")
            return
        lines.append(f"{pad}if x{f} <= {_literal(float(threshold[node]))}:")
        emit(left[node], indent + 1)
        lines.append(f"{pad}else:")
        emit(right[node], indent + 1)

    for root in roots:
        emit(root, 1)
    lines.append("    return out")
    namespace: dict[str, object] = {}
    # The source holds only integers and float reprs made above: nothing from a file is run.
    exec(compile("\n".join(lines), "<ensemble row walk>", "exec"), namespace)
    return namespace["leaves"]  # type: ignore[return-value]


def _literal(value: float) -> str:
    """A float as Python source that reads back as exactly it (an infinity as an overflowing
    literal: a forest trained with missing values splits at +inf)."""
    if math.isinf(value):
        return "1e999" if value > 0 else "-1e999"
    return repr(value)
