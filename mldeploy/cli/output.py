"""How commands print results: JSON on stdout, one document per call."""

from __future__ import annotations

import json
import sys


def print_json(value: object) -> None:
    """Write ``value`` as indented JSON to stdout."""
    json.dump(value, sys.stdout, indent=2)
    sys.stdout.write("\n")
