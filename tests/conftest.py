"""Shared fixtures: every test gets its own model directory and a fresh app."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from mldeploy.http.app import create_app
from modeler.modeler import Modeler
from tests.support import copy_project, free_port, running


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """An empty model directory of the test's own."""
    path = tmp_path / "models"
    path.mkdir()
    return path


@pytest.fixture
def modeler(model_dir: Path) -> Modeler:
    """A Modeler on the empty directory (it trains on first use)."""
    return Modeler(model_dir)


@pytest.fixture
def trained(modeler: Modeler) -> Modeler:
    """A Modeler with one saved, loaded version."""
    return modeler.fit()


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory with one trained version, shared by a test module."""
    path = tmp_path_factory.mktemp("models")
    Modeler(path).fit()
    return path


@pytest.fixture
def app(model_dir: Path) -> Flask:
    """The service on the test's model directory, no background warm-up (tests decide when)."""
    return create_app({"TESTING": True, "MODEL_DIR": str(model_dir), "WARMUP": False})


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client for :func:`app`."""
    return app.test_client()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """``python app.py --port P`` in a fresh copy of the code (empty models/), one per test module;
    yields (base URL, project copy)."""
    project = copy_project(tmp_path_factory.mktemp("clone"))
    port = free_port()
    with running(["app.py", "--port", str(port)], project, port, log=project / "server.log") as (base, _):
        yield base, project
