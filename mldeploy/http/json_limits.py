"""Reading a JSON body with a bound on its nesting: no body can make a parser, or any later walk
of its value, recurse without end.

Why: orjson refuses a document nested deeper than its own limit (1024 levels) and the stdlib
parser, tried next for what only it reads (NaN literals and the like), then recursed until
``RecursionError``: not a ``ValueError``, so every route that reads a body answered 500. A value
orjson did read, up to 1024 levels, was not safe either: ``json.dumps`` or ``repr`` of it in an
error message and scikit-learn's parameter checks recurse once per level (Python stops near 1000),
and ``orjson.dumps`` gives up at 254 levels. So :func:`loads` refuses anything nested deeper than
:data:`MAX_DEPTH` with :class:`TooDeep` (a ``ValueError``, which callers already answer with 400),
whichever parser reads it, and never returns a deeper value.

What the check costs: a body under 16 KiB with at most MAX_DEPTH brackets (a row, a small batch)
cannot nest deeper, which counting its brackets shows in under a microsecond or a few; a larger
one is parsed inside padding arrays so that orjson's own depth counter does the check (see
:func:`_orjson`), about 50 µs plus a copy of the body (measured: +60-100 µs for 300-1,000 rows,
+170-300 µs for 10,000, against 2-3 ms to parse those).
"""

from __future__ import annotations

import json

import orjson
from flask import Flask
from flask.json.provider import DefaultJSONProvider

# Arrays and objects nested deeper than this are refused. No body of this API needs more than a
# handful of levels; 128 is serde_json's default, well under orjson.dumps' 254 and Python's
# recursion limit (1000), so that any later walk of a parsed value is safe.
MAX_DEPTH = 128
# Below this size, counting the brackets (a C loop over the bytes) is cheaper than the padded
# parse, and a body with at most MAX_DEPTH opening brackets cannot nest deeper than MAX_DEPTH.
COUNTED_BELOW = 16 * 1024
_CONTAINERS = (list, dict)


class TooDeep(ValueError):
    """A JSON document nested deeper than :data:`MAX_DEPTH` levels."""

    def __init__(self) -> None:
        super().__init__(f"arrays and objects nested deeper than {MAX_DEPTH} levels")


def _orjson_error(depth: int) -> str | None:
    """orjson's error message for ``depth`` nested arrays, or None when it reads them."""
    try:
        orjson.loads(b"[" * depth + b"]" * depth)
    except orjson.JSONDecodeError as exc:
        return str(exc)
    return None


def orjson_depth_limit(ceiling: int = 1 << 13) -> tuple[int, str]:
    """The deepest nesting orjson reads, and the start of its error message beyond it.

    Found by trying rather than written down, so that an orjson with another limit cannot make
    the padding of :func:`_orjson` silently wrong.
    """
    if _orjson_error(ceiling) is None:
        raise RuntimeError(
            f"orjson reads {ceiling} nested arrays: mldeploy.http.json_limits needs a new way to bound depth"
        )
    low, high = 1, ceiling  # orjson reads `low` levels, not `high`
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if _orjson_error(mid) is None else (low, mid)
    prefix = str(_orjson_error(high)).split(":")[0]  # what follows the colon is the position
    if not prefix:
        raise RuntimeError("orjson's depth error has no message: mldeploy.http.json_limits cannot tell it apart")
    return low, prefix


ORJSON_DEPTH, _ORJSON_DEPTH_ERROR = orjson_depth_limit()
# Padding arrays around a larger body: inside them, more than MAX_DEPTH levels exceed orjson's limit.
_PAD = ORJSON_DEPTH - MAX_DEPTH
_OPEN, _CLOSE = b"[" * _PAD, b"]" * _PAD


class _NotOneValue(ValueError):
    """The body closed one of the padding arrays itself (``1],[2``): it is not one JSON value."""


def _brackets(raw: bytes) -> int:
    # An upper bound of the nesting in any encoding the stdlib detects: in UTF-16 and UTF-32 each
    # "[" and "{" still holds its ASCII byte.
    return raw.count(b"[") + raw.count(b"{")


def _orjson(raw: bytes) -> object:
    if len(raw) < COUNTED_BELOW and _brackets(raw) <= MAX_DEPTH:
        return orjson.loads(raw)
    value = orjson.loads(_OPEN + raw + _CLOSE)
    for _ in range(_PAD):
        # Each padding array holds exactly one value unless the body closed it early; then the
        # body alone would not parse.
        if len(value) != 1:
            raise _NotOneValue("not one JSON value")
        value = value[0]
    return value


def nesting_exceeds(value: object, limit: int) -> bool:
    """Whether ``value`` holds arrays or objects nested deeper than ``limit`` levels.

    Level by level, not recursively, and never past ``limit + 1`` levels.
    """
    depth, level = 0, [value]
    while True:
        containers = [node for node in level if isinstance(node, _CONTAINERS)]
        if not containers:
            return False
        depth += 1
        if depth > limit:
            return True
        level = [child for node in containers for child in (node.values() if isinstance(node, dict) else node)]


def _stdlib(raw: bytes) -> object:
    try:
        value = json.loads(raw)
    except RecursionError:
        # The C parser stops near the interpreter's recursion limit, far beyond MAX_DEPTH.
        raise TooDeep() from None
    if _brackets(raw) > MAX_DEPTH and nesting_exceeds(value, MAX_DEPTH):
        raise TooDeep()
    return value


def loads(raw: bytes) -> object:
    """Parse a JSON body: orjson first, the stdlib for what only the stdlib reads (NaN and
    Infinity literals, 1e999, lone surrogates, UTF-16), so validation can name the field.

    Raises :class:`TooDeep` beyond :data:`MAX_DEPTH` levels, else ValueError (or its subclass
    UnicodeDecodeError) when neither parser reads the body. Never ``RecursionError``.
    """
    try:
        return _orjson(raw)
    except orjson.JSONDecodeError as exc:
        if str(exc).startswith(_ORJSON_DEPTH_ERROR):
            raise TooDeep() from None  # the stdlib reads no deeper than orjson
    except _NotOneValue:
        pass
    return _stdlib(raw)


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider with :func:`loads`, so ``request.get_json()`` is bounded too (the
    service's routes read bodies with ``mldeploy.payload.read_json``; this covers any other)."""

    def loads(self, s: str | bytes, **kwargs: object) -> object:
        """Parse ``s`` as :func:`loads` does (stdlib options in ``kwargs`` are not supported)."""
        return loads(s.encode() if isinstance(s, str) else s)


def init_app(app: Flask) -> None:
    """Install :class:`BoundedJSONProvider`, keeping the current provider's settings."""
    provider = BoundedJSONProvider(app)
    provider.__dict__.update(app.json.__dict__)  # sort_keys and the like, set on the instance
    app.json = provider
