"""Running the shipped nginx config (deploy/nginx/mldeploy.conf) with Debian's nginx in front of
real ``python -m mldeploy serve`` replicas, each stopped by its own PID (process group)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.support import REPO, clean_env, wait_until_up

NGINX_CONF = REPO / "deploy" / "nginx" / "mldeploy.conf"
# /usr/sbin is not on every user's PATH; Debian puts nginx there.
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

# The three things a deployment changes in the shipped file, each found by its directive.
UPSTREAM_SERVER = re.compile(r"^(\s*server\s+)([\w.-]+:\d+)(?=[\s;])", re.M)
LISTEN = re.compile(r"^(\s*listen\s+)(\S+)(?=;)", re.M)
ACCESS_LOG = re.compile(r"^(\s*access_log\s+)(\S+)(?=\s+mldeploy_json;)", re.M)


def nginx_binary() -> str:
    """Debian's nginx, or a failure that says how to install it (make test installs it)."""
    if not os.access(NGINX, os.X_OK):
        pytest.fail("nginx missing: run `make system-deps` (apt-get install nginx)")
    return NGINX


def _replace(pattern: re.Pattern[str], text: str, values: Sequence[str], what: str) -> str:
    found = pattern.findall(text)
    if len(found) != len(values):
        raise ValueError(f"{NGINX_CONF.name}: expected {len(values)} {what} directive(s), found {len(found)}")
    replacements = iter(values)
    return pattern.sub(lambda m: m.group(1) + next(replacements), text)


def render_site(upstreams: Sequence[str], listen: str, access_log: Path, source: Path = NGINX_CONF) -> str:
    """The shipped http-level file with its replica addresses, listen address and access log
    path replaced (and nothing else), for a run on this machine."""
    text = source.read_text()
    text = _replace(UPSTREAM_SERVER, text, upstreams, "upstream server")
    text = _replace(LISTEN, text, [listen], "listen")
    return _replace(ACCESS_LOG, text, [str(access_log)], "access_log")


def main_conf(root: Path, site: Path) -> str:
    """The main context the shipped file is included in, as a distribution's nginx.conf would
    be: logs and temporary files under ``root``. pid and daemon come from ``-g``."""
    # As root, workers would otherwise run as nobody, who cannot write the temp dirs in root's
    # private pytest folder.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {root / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\n"
        f"error_log {root / 'error.log'} warn;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        f"{temp}\n"
        f"    include {site};\n"
        "}\n"
    )


def write_config(root: Path, upstreams: Sequence[str], port: int) -> tuple[Path, Path]:
    """Render the shipped config for 127.0.0.1:``port`` under ``root``; returns (main config,
    access log)."""
    root.mkdir(parents=True, exist_ok=True)
    access_log = root / "access.log"
    site = root / "mldeploy.conf"
    site.write_text(render_site(upstreams, f"127.0.0.1:{port}", access_log))
    conf = root / "nginx.conf"
    conf.write_text(main_conf(root, site))
    return conf, access_log


def nginx_command(root: Path, conf: Path, *extra: str) -> list[str]:
    """nginx with its prefix, config and pid file in ``root``, in the foreground."""
    return [nginx_binary(), "-p", str(root), "-c", str(conf), "-g", f"daemon off; pid {root / 'nginx.pid'};", *extra]


def check_config(root: Path, conf: Path) -> subprocess.CompletedProcess:
    """``nginx -t`` on a rendered config."""
    return subprocess.run(nginx_command(root, conf, "-t"), capture_output=True, text=True, timeout=30)


def stop_group(proc: subprocess.Popen, sig: signal.Signals = signal.SIGTERM, timeout: float = 30.0) -> None:
    """Stop a process we started in its own session, and its children: ``sig`` to its group,
    then SIGKILL to the group if it lingers. The group id is the process's own PID."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout)
    # Children of a killed leader may still be exiting (gunicorn's workers): wait for the group.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)


@contextlib.contextmanager
def nginx_running(root: Path, upstreams: Sequence[str], port: int) -> Iterator[tuple[str, Path]]:
    """The shipped config under nginx on 127.0.0.1:``port``; yields (base URL, access log)."""
    conf, access_log = write_config(root, upstreams, port)
    checked = check_config(root, conf)
    assert checked.returncode == 0, checked.stderr
    with open(root / "nginx.out", "wb") as out:
        proc = subprocess.Popen(nginx_command(root, conf), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_up(base + "/nginx-is-up", proc, timeout=30)  # any answer will do, a 502 too
            yield base, access_log
        finally:
            # SIGQUIT: the master lets its worker finish the requests in flight, then both exit.
            stop_group(proc, signal.SIGQUIT)


class Replica:
    """One ``python -m mldeploy serve --workers N --port P`` in its own session, so that one
    killpg on its PID reaches gunicorn's master and every worker, as a container's death would."""

    def __init__(self, name: str, port: int, env: dict[str, str], log: Path, workers: int = 2) -> None:
        self.name, self.port, self.env, self.log, self.workers = name, port, env, log, workers
        self.proc: subprocess.Popen | None = None
        self.base = f"http://127.0.0.1:{port}"
        self.address = f"127.0.0.1:{port}"

    def start(self) -> Replica:
        """Start it (returns at once; see :meth:`wait_ready`)."""
        command = [sys.executable, "-m", "mldeploy", "serve", "--workers", str(self.workers), "--port", str(self.port)]
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                command, cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until ``/ready`` answers 200 on the replica itself."""
        assert self.proc is not None
        wait_until_up(self.base + "/health", self.proc, timeout)
        deadline = time.monotonic() + timeout
        while True:
            # A replica just restarted under load may queue this request behind nginx's traffic
            # for a while: a slow answer is asked again, until the deadline.
            with contextlib.suppress(requests.Timeout):
                if requests.get(self.base + "/ready", timeout=10).status_code == 200:
                    return
            assert time.monotonic() < deadline, f"replica {self.name} not ready within {timeout} s"
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the master and its workers at once: nothing gets to finish or close cleanly."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        stop_group(self.proc)

    def stop(self) -> None:
        """SIGTERM (gunicorn's graceful stop), SIGKILL if it lingers."""
        if self.proc is not None:
            stop_group(self.proc)


def replica_env(model_dir: Path, metrics_dir: Path, **extra: str) -> dict[str, str]:
    """A replica's environment: the shared model directory, its own metrics folder (wiped by
    mldeploy/http/gunicorn_conf.py at each start, and inside the test's tmp_path even after a SIGKILL)."""
    metrics_dir.mkdir(parents=True, exist_ok=True)
    return clean_env(MLDEPLOY_MODEL_DIR=str(model_dir), PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), **extra)


def access_entries(access_log: Path) -> list[dict]:
    """nginx's JSON access log lines (the shipped mldeploy_json format), parsed."""
    return [json.loads(line) for line in access_log.read_text().splitlines() if line.strip()]


def tried(entry: dict) -> list[str]:
    """The replica addresses nginx tried for one request, in order ("-" entries dropped)."""
    return [a for a in re.split(r"\s*[,:]\s+", entry["upstream_addr"]) if a not in ("", "-")]


# -- reading the config -------------------------------------------------------------------------


@dataclass(frozen=True)
class Directive:
    """One nginx directive: its name, its arguments (quotes removed) and its block, if any."""

    name: str
    args: list[str]
    block: list[Directive] = field(default_factory=list)


ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}
PUNCTUATION = ";{}"


def _tokens(text: str) -> Iterator[tuple[bool, str]]:
    """``(is_punctuation, text)``: words and quoted strings (unquoted, escapes applied), and
    ``;``, ``{``, ``}``; a quoted ";" is a word."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c in PUNCTUATION:
            yield True, c
            i += 1
        elif c in "'\"":
            out, i = [], i + 1
            while text[i] != c:
                if text[i] == "\\":
                    i += 1
                    out.append(ESCAPES.get(text[i], text[i]))
                else:
                    out.append(text[i])
                i += 1
            yield False, "".join(out)
            i += 1
        else:
            start = i
            while i < n and not text[i].isspace() and text[i] not in PUNCTUATION:
                i += 1
            yield False, text[start:i]


def parse_nginx(text: str) -> list[Directive]:
    """nginx's configuration syntax as a tree of directives (no includes, no validation: that is
    ``nginx -t``'s job)."""
    stack: list[list[Directive]] = [[]]
    words: list[str] = []
    for punctuation, token in _tokens(text):
        if not punctuation:
            words.append(token)
        elif token == "}":
            if words or len(stack) == 1:
                raise ValueError(f"unexpected '}}' after {words}")
            stack.pop()
        else:
            block: list[Directive] = []
            stack[-1].append(Directive(words[0], words[1:], block))
            if token == "{":
                stack.append(block)
            words = []
    if len(stack) != 1 or words:
        raise ValueError("unbalanced braces or a directive without ';'")
    return stack[0]
