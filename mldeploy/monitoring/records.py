"""What the prediction log holds: one :class:`LogRecord` per answered row, and which requests are
sampled into it."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

_HASH_BYTES = 8
_HASH_SPAN = float(1 << (8 * _HASH_BYTES))


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One answered row: which request and row, which model and version, when, what went in and
    what came out (the answer's keys from :mod:`mldeploy.contract`: ``Class`` or ``Prediction``,
    and ``Probabilities`` when the model has them)."""

    request_id: str
    row: int
    model: str
    version: str
    time: datetime  # UTC
    inputs: dict
    outputs: dict


def sampled(request_id: str, rate: float) -> bool:
    """Whether ``request_id`` falls in a sample of ``rate`` (0 to 1) of all requests.

    Decided by a hash of the id, not at random, so every worker and replica (and a later
    feedback for the same request) agrees, and all rows of a request are in or out together.
    """
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    digest = hashlib.blake2b(request_id.encode("utf-8", "surrogatepass"), digest_size=_HASH_BYTES).digest()
    return int.from_bytes(digest, "big") / _HASH_SPAN < rate
