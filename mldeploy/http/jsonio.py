"""Fast JSON both ways: orjson parses request bodies and writes every Flask-RESTful response.

Flask-RESTful writes responses with its own ``output_json`` (stdlib json), not ``app.json``, so
:func:`output_json` is registered with ``api.representation("application/json")``. Bodies that
orjson rejects but Python's json reads (the NaN and Infinity literals, 1e999, lone surrogates,
UTF-16) are read again by the stdlib parser, so validation can name the field that holds them.

Each leaf's answer is serialised once per tree (:func:`leaf_answers`); a batch response is then a
list of pre-serialised fragments that orjson copies verbatim.
"""

from __future__ import annotations

import contextlib
import gc
import weakref
from collections.abc import Iterator, Mapping

import orjson
from flask import Response, current_app

from mldeploy.contract import CLASS, PROBABILITIES
from mldeploy.http import json_limits
from modeler.compiled_tree import CompiledTree

DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection inside the block (unless it was off already).

    A parsed JSON document holds no reference cycles, so a collection run while parsing one can
    free nothing; yet the thousands of lists of a large batch trigger dozens of them, which
    doubled the parse time of a 10,000-row column-wise body.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def loads(raw: bytes) -> object:
    """Parse a JSON body: orjson first, the stdlib for what only the stdlib accepts, nested at
    most ``json_limits.MAX_DEPTH`` levels (see :mod:`mldeploy.http.json_limits`).

    Raises ValueError (``json_limits.TooDeep``, or UnicodeDecodeError) when it cannot be read.
    """
    with collector_paused():
        return json_limits.loads(raw)


def dumps(data: object) -> bytes:
    """``data`` as compact JSON bytes."""
    return orjson.dumps(data, option=DUMP_OPTIONS)


def output_json(data: object, code: int, headers: Mapping[str, str] | None = None) -> Response:
    """Flask-RESTful representation for ``application/json``, written by orjson."""
    return current_app.response_class(dumps(data), status=code, headers=headers, mimetype="application/json")


class LeafAnswers:
    """Per leaf of one tree: its probabilities and its batch prediction, serialised once."""

    def __init__(self, tree: CompiledTree) -> None:
        self.tree = tree
        self.probabilities = [orjson.Fragment(orjson.dumps(p)) for p in tree.leaf_proba_dicts]
        self.predictions = [
            orjson.Fragment(orjson.dumps({CLASS: label, PROBABILITIES: p}))
            for label, p in zip(tree.leaf_labels, tree.leaf_proba_dicts, strict=True)
        ]

    def prediction_dict(self, leaf: int) -> dict:
        """A batch prediction as a dict of its own, for a row that carries more (warnings, paths)."""
        return {CLASS: self.tree.leaf_labels[leaf], PROBABILITIES: self.probabilities[leaf]}


# Keyed by the tree itself: a new model version brings a new tree, and the old entry goes with it.
_answers: weakref.WeakKeyDictionary[CompiledTree, LeafAnswers] = weakref.WeakKeyDictionary()


def leaf_answers(tree: CompiledTree) -> LeafAnswers:
    """The pre-serialised answers of ``tree``'s leaves, built on first use."""
    answers = _answers.get(tree)
    if answers is None:
        answers = _answers[tree] = LeafAnswers(tree)
    return answers
