"""A throwaway PostgreSQL server for tests: Debian's binaries, a fresh cluster in a temporary
folder, listening on 127.0.0.1 only, stopped by its postmaster's PID.

Use it as a pytest plugin (``pytest_plugins = ["tests.postgres"]`` in a test module) for the
``postgres`` fixture (one server per session), ``postgres_url`` (a fresh database per test) and
``log_database`` (a prediction log database of each backend, SQLite and PostgreSQL, in turn), or
call :func:`throwaway_cluster` directly (the benchmark does).

Without the binaries the fixtures skip with the reason; under ``CI=true`` they fail instead, since
CI installs them (``make system-deps``) and a silent skip there would hide the PostgreSQL tests.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import free_port

# Debian puts each major version's server binaries here (package postgresql).
BIN_GLOB = "/usr/lib/postgresql/*/bin"
# PostgreSQL refuses to run as root; as root, the cluster runs as this Debian user.
SERVER_USER = "postgres"
SUPERUSER = "postgres"
START_ATTEMPTS = 3  # a free port can be taken by someone else between the probe and the start
STOP_TIMEOUT = 30.0


@dataclass(frozen=True)
class PostgresServer:
    """A running cluster: its port, data folder and postmaster PID."""

    port: int
    data_dir: Path
    pid: int

    def url(self, database: str = "postgres") -> str:
        """A libpq URL for ``database`` as the superuser (trust authentication: no password)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def stop(self) -> None:
        """Fast shutdown by the postmaster's PID (SIGINT); SIGKILL if it lingers."""
        stop_postmaster(self.pid, self.data_dir)

    def start_again(self) -> PostgresServer:
        """Start the same cluster on the same port (after :meth:`stop`); returns the new server."""
        return PostgresServer(self.port, self.data_dir, start_postmaster(self.data_dir, self.port))


def bin_dir() -> Path | None:
    """The newest installed PostgreSQL's binary folder, or None when none is installed."""
    found = sorted(
        (Path(p) for p in Path("/").glob(BIN_GLOB.lstrip("/")) if (Path(p) / "initdb").is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    return found[-1] if found else None


def require_binaries() -> Path:
    """The binary folder, or skip the test (fail it under CI=true) saying what is missing."""
    found = bin_dir()
    if found is not None:
        return found
    reason = f"PostgreSQL server binaries not found ({BIN_GLOB}/initdb): apt-get install postgresql (make system-deps)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(reason + " -- CI must run the PostgreSQL tests", pytrace=False)
    pytest.skip(reason)


def _as_server_user(args: list[str]) -> list[str]:
    # As root, PostgreSQL's tools must run as another user; as anyone else, as themselves.
    return ["runuser", "-u", SERVER_USER, "--", *args] if os.geteuid() == 0 else args


def _run(args: list[str], timeout: float = 120.0) -> None:
    done = subprocess.run(_as_server_user(args), capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{args[0]} failed ({done.returncode}): {(done.stdout + done.stderr).strip()[-2000:]}")


def init_cluster(data_dir: Path) -> None:
    """``initdb`` a new cluster in ``data_dir`` (trust authentication, superuser ``postgres``)."""
    initdb = require_binaries() / "initdb"
    _run([str(initdb), "-D", str(data_dir), "-A", "trust", "-U", SUPERUSER, "--no-sync", "-E", "UTF8"])


def start_postmaster(data_dir: Path, port: int) -> int:
    """Start the cluster on 127.0.0.1:``port`` (its socket in ``data_dir``); returns the PID."""
    pg_ctl = require_binaries() / "pg_ctl"
    options = f"-p {port} -k {data_dir} -c listen_addresses=127.0.0.1"
    _run([str(pg_ctl), "-D", str(data_dir), "-o", options, "-l", str(data_dir / "server.log"), "-w", "start"])
    # postmaster.pid's first line is the server's PID: the handle to stop it by.
    return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_postmaster(pid: int, data_dir: Path, timeout: float = STOP_TIMEOUT) -> None:
    """Stop the postmaster ``pid``: SIGINT is PostgreSQL's fast shutdown; SIGKILL after ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGINT)
    deadline = time.monotonic() + timeout
    # postmaster.pid goes when the server has shut down; the PID check covers a crash.
    while _alive(pid) and (data_dir / "postmaster.pid").exists():
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.05)


@contextlib.contextmanager
def throwaway_cluster() -> Iterator[PostgresServer]:
    """A new cluster on a free loopback port for the duration of the block; deleted afterwards."""
    require_binaries()
    # Not pytest's tmp_path: it is private to root, and the server runs as another user.
    root = Path(tempfile.mkdtemp(prefix="mldeploy-postgres-"))
    data_dir = root / "data"
    try:
        data_dir.mkdir(mode=0o700)
        if os.geteuid() == 0:
            user = pwd.getpwnam(SERVER_USER)
            root.chmod(0o755)
            os.chown(data_dir, user.pw_uid, user.pw_gid)
        init_cluster(data_dir)
        for attempt in itertools.count(1):
            port = free_port()
            try:
                pid = start_postmaster(data_dir, port)
                break
            except RuntimeError:
                if attempt == START_ATTEMPTS:
                    raise
        server = PostgresServer(port, data_dir, pid)
        try:
            yield server
        finally:
            # The test may have stopped and restarted it: stop whichever postmaster runs now.
            pid_file = data_dir / "postmaster.pid"
            if pid_file.exists():
                stop_postmaster(int(pid_file.read_text().split("\n", 1)[0]), data_dir)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def create_database(server: PostgresServer, name: str) -> str:
    """Create database ``name`` on ``server``; returns its URL."""
    import psycopg

    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.url(name)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL server for the whole session."""
    with throwaway_cluster() as server:
        yield server


_database_numbers = itertools.count()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> str:
    """The URL of a new, empty database on the session's server (one per test)."""
    return create_database(postgres, f"test_{os.getpid()}_{next(_database_numbers)}")


@pytest.fixture(params=["sqlite", "postgresql"])
def log_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty prediction log database: a SQLite file in tmp_path, then a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "predictions.sqlite3")
    return request.getfixturevalue("postgres_url")
