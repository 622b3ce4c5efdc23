"""Times and durations as people type them: ``30m``, ``1h``, ``7d``, or an ISO 8601 time.

Used by ``log export --since`` and by the retention setting (a maximum age). A time without a
zone is read as UTC, the zone the log stores.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")


def parse_duration(text: str) -> timedelta:
    """``"90s"``, ``"30m"``, ``"1h"``, ``"7d"``, ``"2w"`` (or plain seconds) as a positive timedelta."""
    value = text.strip().lower()
    match = _DURATION.fullmatch(value)
    try:
        seconds = float(match[1]) * _UNITS[match[2]] if match else float(value)
    except ValueError:
        raise ValueError(f"not a duration: {text!r} (use e.g. 90s, 30m, 1h, 7d, 2w)") from None
    if not seconds > 0 or seconds == float("inf"):
        raise ValueError(f"a duration must be positive and finite, got {text!r}")
    return timedelta(seconds=seconds)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """A duration back from ``now`` (``"1h"``: the last hour) or an ISO 8601 time, as UTC."""
    now = now or datetime.now(UTC)
    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(
            f"not a time or duration: {text!r} (use an ISO time like 2026-11-01T09:30 or a duration like 1h, 30m)"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
