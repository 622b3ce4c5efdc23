"""The README and the reference pages in docs/ stay true to the code: their links lead somewhere,
the files, make targets and MLDEPLOY_* variables they name exist, and the README's Python
snippets run as written against a live server. (Every command and exit code has a row in
docs/cli.md: tests/test_cli.py; every variable the service reads has one in
docs/configuration.md: tests/test_deploy.py.)"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mldeploy.settings import env_names
from tests.support import REPO, clean_env

README = REPO / "README.md"
PAGES = sorted((REPO / "docs").glob("*.md"))
DOCUMENTS = [README, *PAGES]
# Read by the notebook (and named in the docs for it), never by the service.
CLIENT_ENV = {"MLDEPLOY_URL"}
# What the README's snippets call; the live server's address replaces it.
DEFAULT_URL = "http://localhost:5000"

LINK = re.compile(r"\]\(([^)\s]+)\)")
# A path of this repository in backticks: `mldeploy/http/auth.py`, `requirements-onnx.txt`, ...
TOP_FOLDERS = "mldeploy|mldeploy_client|modeler|tests|bench|deploy|notebooks|docs|\\.ci"
REPO_PATH = re.compile(rf"`((?:{TOP_FOLDERS})/[\w./-]*|[\w-]+\.txt)`")
MAKE_TARGET = re.compile(r"\bmake ([a-z][\w-]*)")
VARIABLE = re.compile(r"\bMLDEPLOY_[A-Z0-9_]*[A-Z0-9]\b")
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def anchors(document: Path) -> set[str]:
    """The fragment ids GitHub gives the document's headings."""
    headings = re.findall(r"^#+ (.+)$", document.read_text(), flags=re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def outside_code_blocks(text: str) -> str:
    """``text`` without its fenced blocks (where ``# comments`` are not headings or links)."""
    return re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_links_lead_to_existing_pages_and_headings(document: Path) -> None:
    broken = []
    for target in LINK.findall(outside_code_blocks(document.read_text())):
        if target.startswith(("http://", "https://")):
            continue
        path, _, fragment = target.partition("#")
        linked = (document.parent / path).resolve() if path else document
        if not linked.is_file() or (fragment and fragment not in anchors(linked)):
            broken.append(target)
    assert not broken, f"{document.name}: links to nothing: {broken}"


def test_the_readme_links_every_reference_page() -> None:
    linked = {target.split("#")[0] for target in LINK.findall(README.read_text())}
    assert {f"docs/{page.name}" for page in PAGES} <= linked


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_named_files_exist(document: Path) -> None:
    missing = [path for path in REPO_PATH.findall(document.read_text()) if not (REPO / path).exists()]
    assert not missing, f"{document.name} names files that do not exist: {missing}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_named_make_targets_exist(document: Path) -> None:
    targets = set(re.findall(r"^([a-z][\w-]*):", (REPO / "Makefile").read_text(), flags=re.M))
    unknown = set(MAKE_TARGET.findall(document.read_text())) - targets
    assert not unknown, f"{document.name} names make targets the Makefile lacks: {unknown}"


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: p.name)
def test_named_variables_are_read(document: Path) -> None:
    unknown = set(VARIABLE.findall(document.read_text())) - env_names() - CLIENT_ENV
    assert not unknown, f"{document.name} names variables nothing reads: {unknown}"


def test_the_readme_keeps_its_quickstart_and_stays_short() -> None:
    text = README.read_text()
    quickstart = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    assert "make run" in quickstart and "make test" in quickstart and "`.ci/run` runs `make test`" in quickstart
    assert "{...}" not in text, "a placeholder in a README snippet: it would not run as written"
    assert len(text.splitlines()) < 300, "the README is the front door: move reference text to docs/"


def test_the_readme_python_snippets_run_against_the_live_server(live) -> None:
    base, _ = live
    snippets = PYTHON_BLOCK.findall(README.read_text())
    assert snippets
    for snippet in snippets:
        assert DEFAULT_URL in snippet, "a snippet that calls no server is not checked here"
        code = snippet.replace(DEFAULT_URL, base)
        run = subprocess.run(
            [sys.executable, "-c", code], cwd=REPO, env=clean_env(), capture_output=True, text=True, timeout=120
        )
        assert run.returncode == 0, f"{snippet}\n{run.stderr}"
        assert "setosa" in run.stdout, run.stdout
