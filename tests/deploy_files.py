"""Reading the deployment files the tests check: the Dockerfile and the Kubernetes manifests."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import yaml

from tests.support import REPO

DOCKERFILE = REPO / "Dockerfile"
KUBERNETES = REPO / "deploy" / "kubernetes"


def dockerfile_instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` in order, continuation lines joined, comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    return instructions


def exec_form(args: str) -> list[str]:
    """A JSON-array (exec form) argument list, or the shell form split as a shell would."""
    return json.loads(args) if args.startswith("[") else shlex.split(args)


def manifests() -> dict[str, dict]:
    """Every Kubernetes resource under deploy/kubernetes, by kind."""
    found: dict[str, dict] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                found[doc["kind"]] = doc
    return found
