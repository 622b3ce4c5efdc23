"""The shipped nginx config (deploy/nginx/mldeploy.conf) under Debian's nginx, in front of real
``python -m mldeploy serve --workers 2`` replicas sharing one model directory.

Under load (8 clients, 20 s) one replica is SIGKILLed, restarted, and the version is switched
through nginx: the client must see no failure, only the two versions, only the new one from
one poll interval after the switch, and both replicas answering after the restart. Other tests
check the retry policy (predictions retried, admin calls not), the JSON errors nginx makes
itself, the body limit and the request id. Figures are printed (``pytest -s``).
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from mldeploy.settings import DEFAULTS
from tests.nginx_support import (
    NGINX_CONF,
    Replica,
    access_entries,
    check_config,
    nginx_running,
    parse_nginx,
    replica_env,
    tried,
    write_config,
)
from tests.support import SEED_ROW, Answer, free_port, run_cli

ADMIN_KEY = "nginx-admin-key"
AUTH = {"Authorization": f"Bearer {ADMIN_KEY}"}
# MLDEPLOY_POLL_INTERVAL's default, also set on the replicas so that the bound below is theirs.
POLL_INTERVAL = float(DEFAULTS["POLL_INTERVAL"])
# A worker checks the pointer on the first request it handles at least POLL_INTERVAL after its
# previous check, and the pointer is replaced before the activate answer leaves the replica; a
# request is stamped before it leaves the client and reaches a worker later, on the same
# monotonic clock. So no old answer can start later than POLL_INTERVAL after the switch answer,
# with nothing to spare for skew. The 50 ms only keep float rounding and the stamps' own cost
# (microseconds) from turning a request that started exactly at the bound into a failure.
MARGIN = 0.05
CLIENTS = 8
LOAD_SECONDS = 20.0
# A bound on the count too, well above what 8 clients reach in 20 s here (about 10,000 in all).
MAX_REQUESTS_PER_CLIENT = 25_000
# The timeline, in seconds after the load starts. The switch comes as soon as the restarted
# replica can be back, because the activate call itself takes seconds under this load (6-12 s
# seen here): the worker that gets it imports scikit-learn to verify the version (serving never
# needs it), on 2 cores shared with 8 clients, nginx and 4 workers.
KILL_AT, RESTART_AT, SWITCH_AT = 2.0, 3.5, 6.0
# The load stops LOAD_SECONDS after its start or AFTER_SWITCH after the switch answer, whichever
# is later (enough for every worker to be seen on the new version on a slow machine), and
# never later than LOAD_CAP.
AFTER_SWITCH, LOAD_CAP = 4.0, 35.0


class Load:
    """Client threads, each with its own requests.Session, POSTing /predict through nginx until
    told to stop, the time cap or the count bound, recording every answer. A context manager:
    the clients are stopped and joined when the block ends, however it ends."""

    def __init__(self, base: str, clients: int, cap: float, max_per_client: int) -> None:
        self.url = base + "/predict"
        self.clients, self.cap, self.max_per_client = clients, cap, max_per_client
        self.answers: list[Answer] = []
        self.started = 0.0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _client(self, n: int) -> None:
        deadline = self.started + self.cap
        with requests.Session() as session:
            for i in range(self.max_per_client):
                if self._stop.is_set() or time.monotonic() >= deadline:
                    return
                request_id = f"load-{n}-{i}"
                sent = time.monotonic()
                try:
                    res = session.post(self.url, json=SEED_ROW, headers={"X-Request-ID": request_id}, timeout=30)
                    ok = res.status_code == 200
                    status, version = res.status_code, res.json().get("ModelVersion") if ok else None
                    error = None if ok else res.text[:200]
                except (requests.RequestException, ValueError) as exc:
                    status, version, error = 0, None, repr(exc)  # refused, reset or unreadable: a failure
                self.answers.append(Answer(request_id, sent, time.monotonic(), status, version, error))

    def __enter__(self) -> Load:
        self.started = time.monotonic()
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def at(self, offset: float) -> None:
        """Sleep until ``offset`` seconds after the start (at most until the cap)."""
        time.sleep(max(0.0, self.started + min(offset, self.cap) - time.monotonic()))

    def stop_at(self, offset: float) -> float:
        """Let the clients run until ``offset`` seconds after the start (at most until the cap),
        then stop them; returns when they stopped, in seconds after the start."""
        self.at(offset)
        self.__exit__()
        return time.monotonic() - self.started

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)


def wait_for_log(access_log: Path, request_ids: set[str], timeout: float = 10.0) -> dict[str, dict]:
    """nginx's log entries by request id, once every id in ``request_ids`` is there (nginx writes
    a line just after the answer has gone)."""
    deadline = time.monotonic() + timeout
    while True:
        entries = {e["request_id"]: e for e in access_entries(access_log)}
        if request_ids <= entries.keys() or time.monotonic() > deadline:
            return entries
        time.sleep(0.05)


@dataclass(frozen=True)
class Versions:
    model_dir: Path
    old: str
    new: str


@pytest.fixture
def two_versions(tmp_path: Path) -> Versions:
    """A model directory with two versions trained by the command line: the one to switch to
    (max_depth=2), then the one served at start, which its `train` makes current. ("old" and
    "new" are the order of serving, not of training; two commands rather than three, since
    each costs seconds of imports on a busy machine.)"""
    model_dir = tmp_path / "models"
    target = run_cli(model_dir, "train", "--param", "max_depth=2")
    assert target.returncode == 0, target.stderr
    served = run_cli(model_dir, "train")
    assert served.returncode == 0, served.stderr
    return Versions(model_dir, json.loads(served.stdout)["version"], json.loads(target.stdout)["version"])


@pytest.fixture
def replicas(tmp_path: Path, two_versions: Versions) -> Iterator[tuple[Replica, Replica]]:
    """Two replicas on the shared model directory, neither allowed to train on its own."""
    pair = []
    for name in ("a", "b"):
        env = replica_env(
            two_versions.model_dir,
            tmp_path / f"metrics-{name}",
            MLDEPLOY_ADMIN_KEY=ADMIN_KEY,
            MLDEPLOY_LAZY_TRAIN="false",
            MLDEPLOY_POLL_INTERVAL=str(POLL_INTERVAL),
        )
        pair.append(Replica(name, free_port(), env, tmp_path / f"replica-{name}.log").start())
    try:
        for replica in pair:
            replica.wait_ready()
        yield pair[0], pair[1]
    finally:
        for replica in pair:
            replica.stop()


def test_sigkill_restart_and_switch_under_load_lose_no_request(
    tmp_path: Path, two_versions: Versions, replicas: tuple[Replica, Replica]
) -> None:
    a, b = replicas
    old, new = two_versions.old, two_versions.new
    with (
        nginx_running(tmp_path / "nginx", [a.address, b.address], free_port()) as (base, access_log),
        Load(base, CLIENTS, LOAD_CAP, MAX_REQUESTS_PER_CLIENT) as load,
    ):
        load.at(KILL_AT)
        killed = time.monotonic()
        b.kill()
        dead = time.monotonic()  # the SIGKILL went out between `killed` and this
        load.at(RESTART_AT)
        b.start()
        b.wait_ready()
        back = time.monotonic()
        load.at(SWITCH_AT)  # at once if b came back later than that
        asked = time.monotonic()
        res = requests.post(base + "/model/activate", json={"version": new}, headers=AUTH, timeout=60)
        switched = time.monotonic()  # the switch answer has arrived
        ended = load.stop_at(max(LOAD_SECONDS, switched - load.started + AFTER_SWITCH))
        assert res.status_code == 200 and res.json()["version"] == new, res.text
        answers = load.answers
        log = wait_for_log(access_log, {x.request_id for x in answers})

    replica_of = {a.address: a.name, b.address: b.name}

    def answered_by(answer: Answer) -> str:
        entry = log.get(answer.request_id)
        return replica_of.get(tried(entry)[-1], "?") if entry else "?"

    failures = [x for x in answers if x.status != 200 or x.version is None]
    full_body = max(e["bytes_sent"] for e in log.values() if e["uri"] == "/predict" and e["status"] == 200)

    def torn(answer: Answer) -> bool:
        """Cut by the kill after b had sent its 200 header, and nginx had passed it on."""
        entry = log.get(answer.request_id)
        return (
            entry is not None
            and answer.sent <= dead
            and answer.done >= killed
            and tried(entry) == [b.address]
            and entry["upstream_status"] == "200"
            and entry["bytes_sent"] < full_body
        )

    torn_at_kill = [x for x in failures if torn(x)]
    versions = Counter(x.version for x in answers if x.status == 200)
    old_after = [x.sent - switched for x in answers if x.version == old and x.sent > switched]
    latest_old = max((x.sent - switched for x in answers if x.version == old), default=float("-inf"))
    settled = [x for x in answers if x.sent >= switched + POLL_INTERVAL + MARGIN]
    late_old = [x for x in settled if x.version != new]
    before_kill = Counter(answered_by(x) for x in answers if x.done < killed)
    after_restart = Counter(answered_by(x) for x in answers if x.sent >= back)
    after_switch = Counter(answered_by(x) for x in settled)
    retried = [e for e in log.values() if e["uri"] == "/predict" and len(tried(e)) > 1]
    print(
        f"\n[nginx, 2 replicas x 2 workers, {CLIENTS} clients, {LOAD_SECONDS:.0f} s] requests={len(answers)} "
        f"failures={len(failures)} (torn by the kill after their header: {len(torn_at_kill)}) "
        f"versions={dict(versions)} (old={old}, new={new}); "
        f"b killed at {killed - load.started:.2f} s, ready again at {back - load.started:.2f} s; "
        f"switch asked at {asked - load.started:.2f} s, answered at {switched - load.started:.2f} s; load ended at "
        f"{ended:.2f} s; old answers started after it={len(old_after)}, "
        f"the latest {latest_old:+.3f} s after it (bound {POLL_INTERVAL + MARGIN:.2f} s); "
        f"retried by nginx={len(retried)} (e.g. {retried[0]['upstream_status'] if retried else '-'}); "
        f"answers per replica before the kill={dict(before_kill)}, after the restart={dict(after_restart)}, "
        f"from {POLL_INTERVAL + MARGIN:.2f} s after the switch={dict(after_switch)}"
    )
    assert [x for x in failures if x not in torn_at_kill] == [], failures[:5]
    assert set(versions) == {old, new}
    assert late_old == [], late_old[:5]
    # Not vacuous: the load ran through every step, and the kill did make nginx retry.
    assert len(answers) < CLIENTS * MAX_REQUESTS_PER_CLIENT, "the count bound ended the load before the time bound"
    assert settled, f"the load ended before {POLL_INTERVAL + MARGIN:.2f} s after the switch"
    assert before_kill.keys() >= {"a", "b"}
    assert retried, "no request was retried: the kill did not hit a replica in use"
    assert after_restart["a"] > 0 and after_restart["b"] > 0, after_restart
    assert after_switch["a"] > 0 and after_switch["b"] > 0, after_switch
    assert torn_at_kill == [], f"answers torn by the kill between header and body: {torn_at_kill}"


# -- retry policy, nginx's own errors, body limit, request id ----------------------------------


class DyingReplica:
    """A TCP server that reads each request in full and closes the connection unanswered, as a
    replica that dies mid-request does. Records the request ids it received."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.received: list[tuple[str, str]] = []  # (request line, X-Request-ID)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(5)
                data = b""
                while b"\r\n\r\n" not in data and (chunk := conn.recv(65536)):
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
                length = int(headers.get("content-length", 0))
                while len(body) < length and (chunk := conn.recv(65536)):
                    body += chunk
                self.received.append((lines[0], headers.get("x-request-id", "")))

    def __enter__(self) -> DyingReplica:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sock.close()


@pytest.fixture(scope="module")
def one_replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replica]:
    """One real replica on a trained model directory."""
    root = tmp_path_factory.mktemp("one-replica")
    trained = run_cli(root / "models", "train")
    assert trained.returncode == 0, trained.stderr
    env = replica_env(root / "models", root / "metrics", MLDEPLOY_ADMIN_KEY=ADMIN_KEY, MLDEPLOY_LAZY_TRAIN="false")
    replica = Replica("real", free_port(), env, root / "replica.log").start()
    try:
        replica.wait_ready()
        yield replica
    finally:
        replica.stop()


def test_predictions_are_retried_on_another_replica_admin_calls_are_not(tmp_path: Path, one_replica: Replica) -> None:
    version = requests.get(one_replica.base + "/model", timeout=30).json()["version"]
    ids = itertools.count()
    admin: list[requests.Response] = []
    predictions: list[requests.Response] = []
    # The dying replica is listed first, so round robin sends it the first request; it is ejected
    # after max_fails (3), so each round stops as soon as both cases were seen.
    with DyingReplica() as dying, nginx_running(tmp_path, [dying.address, one_replica.address], free_port()) as run:
        base, access_log = run
        for _ in range(4):
            headers = {**AUTH, "X-Request-ID": f"admin-{next(ids)}"}
            admin.append(
                requests.post(base + "/model/activate", json={"version": version}, headers=headers, timeout=30)
            )
            for _ in range(2):
                headers = {"X-Request-ID": f"predict-{next(ids)}"}
                predictions.append(requests.post(base + "/predict", json=SEED_ROW, headers=headers, timeout=30))
            if any(r.status_code == 502 for r in admin) and any(i.startswith("predict-") for _, i in dying.received):
                break
        received = Counter(request_id for _, request_id in dying.received)
        log = wait_for_log(access_log, {r.request.headers["X-Request-ID"] for r in admin + predictions})

    def entry(res: requests.Response) -> dict:
        return log[res.request.headers["X-Request-ID"]]

    failed_admin = [r for r in admin if r.status_code == 502]
    replayed = [r for r in predictions if tried(entry(r)) == [dying.address, one_replica.address]]
    print(
        f"\n[retry policy] admin statuses={[r.status_code for r in admin]} "
        f"predict statuses={[r.status_code for r in predictions]}; the dying replica received {dict(received)}; "
        f"predictions replayed on the real replica={len(replayed)}"
    )
    assert all(r.status_code == 200 and r.json()["ModelVersion"] == version for r in predictions)
    assert replayed, "no prediction reached the dying replica first"
    assert all(received[r.request.headers["X-Request-ID"]] == 1 for r in replayed)
    assert failed_admin, "no admin call reached the dying replica"
    for res in admin:
        assert res.status_code in (200, 502), res.text
        assert len(tried(entry(res))) == 1, entry(res)  # never passed to a second replica
    for res in failed_admin:
        request_id = res.request.headers["X-Request-ID"]
        assert received[request_id] == 1  # the replica got it once, and nginx did not replay it
        assert res.headers["Content-Type"] == "application/json"
        assert res.headers["X-Request-ID"] == request_id
        assert "No mldeploy replica could answer" in res.json()["message"]


def test_body_limit_matches_the_service_and_nginx_errors_are_json(tmp_path: Path, one_replica: Replica) -> None:
    limit = int(DEFAULTS["MAX_CONTENT_LENGTH"])
    dead = f"127.0.0.1:{free_port()}"  # nothing listens there
    headers = {"Content-Type": "application/json"}
    with nginx_running(tmp_path / "up", [one_replica.address, dead], free_port()) as (base, access_log):
        at_limit = requests.post(base + "/predict", data=b" " * limit, headers=headers, timeout=60)
        over = requests.post(base + "/predict", data=b" " * (limit + 1), headers=headers, timeout=60)
        own_id = requests.get(base + "/health", headers={"X-Request-ID": "given-1"}, timeout=30)
        made_id = requests.get(base + "/health", timeout=30)
        # nginx writes a request's log line after it has sent the answer: wait for it, briefly.
        deadline = time.monotonic() + 10
        while True:
            log = {e["request_id"]: e for e in access_entries(access_log)}
            if made_id.headers["X-Request-ID"] in log or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    with nginx_running(tmp_path / "down", [dead, f"127.0.0.1:{free_port()}"], free_port()) as (base, _):
        nobody = requests.post(base + "/predict", json=SEED_ROW, timeout=30)
    print(
        f"\n[limits] {limit} bytes -> {at_limit.status_code} {at_limit.json()}; {limit + 1} bytes -> "
        f"{over.status_code} {over.json()}; no replica up -> {nobody.status_code} {nobody.json()}"
    )
    # The limit reached the replica (its own JSON 400 for a body that is not JSON), one more byte
    # did not (nginx's 413, same wording as the service's rule: JSON, a message).
    assert at_limit.status_code == 400 and at_limit.json()["message"]
    assert over.status_code == 413 and "16 MiB" in over.json()["message"]
    assert nobody.status_code == 502 and nobody.json()["message"] and nobody.headers["Retry-After"] == "1"
    for res in (at_limit, over, nobody):
        assert res.headers["Content-Type"] == "application/json"
        assert res.headers["X-Request-ID"]
    # The client's id is passed through; without one, nginx makes one and the replica uses it.
    assert own_id.headers["X-Request-ID"] == "given-1" and "given-1" in log
    assert made_id.headers["X-Request-ID"] in log
    assert log[made_id.headers["X-Request-ID"]]["uri"] == "/health"


# -- the file itself ----------------------------------------------------------------------------


def test_rendered_config_passes_nginx_t_and_a_broken_one_fails(tmp_path: Path) -> None:
    conf, _ = write_config(tmp_path / "good", ["127.0.0.1:8001", "127.0.0.1:8002"], free_port())
    good = check_config(tmp_path / "good", conf)
    assert good.returncode == 0, good.stderr
    assert "test is successful" in good.stderr
    conf, _ = write_config(tmp_path / "bad", ["127.0.0.1:8001", "127.0.0.1:8002"], free_port())
    site = conf.parent / "mldeploy.conf"
    site.write_text(site.read_text().replace("http_503 non_idempotent;", "http_503 non_idempotant;", 1))
    bad = check_config(tmp_path / "bad", conf)
    assert bad.returncode != 0 and "non_idempotant" in bad.stderr


def locations() -> dict[str, list]:
    """The shipped server's location blocks, by their arguments joined ("= /predict", "@name")."""
    (server,) = [d for d in parse_nginx(NGINX_CONF.read_text()) if d.name == "server"]
    return {" ".join(d.args): d.block for d in server.block if d.name == "location"}


def directive(block: list, name: str) -> list[str] | None:
    """The arguments of the first ``name`` directive in ``block``, or None."""
    return next((d.args for d in block if d.name == name), None)


def test_only_predictions_retry_posts() -> None:
    found = locations()
    retrying = {
        where for where, block in found.items() if "non_idempotent" in (directive(block, "proxy_next_upstream") or [])
    }
    assert retrying == {"= /predict", r"~ ^/v2/models/[^/]+(/versions/[^/]+)?/infer$"}
    admin = found[r"~ ^/model/(train|activate)$"]
    assert directive(admin, "proxy_pass") == ["http://mldeploy"]
    assert directive(admin, "proxy_next_upstream") is None  # inherits the server's: no non_idempotent
    (server,) = [d for d in parse_nginx(NGINX_CONF.read_text()) if d.name == "server"]
    assert "non_idempotent" not in directive(server.block, "proxy_next_upstream")


def test_nginx_limits_match_the_service_and_every_error_page_is_json() -> None:
    text = NGINX_CONF.read_text()
    top = parse_nginx(text)
    (server,) = [d for d in top if d.name == "server"]
    size = directive(server.block, "client_max_body_size")[0]
    assert size.endswith("m") and int(size[:-1]) * 1024 * 1024 == DEFAULTS["MAX_CONTENT_LENGTH"]
    (upstream,) = [d for d in top if d.name == "upstream"]
    servers = [d.args for d in upstream.block if d.name == "server"]
    assert len(servers) >= 2 and all({"max_fails=3", "fail_timeout=5s"} <= set(args) for args in servers)
    assert directive(upstream.block, "keepalive")
    assert directive(server.block, "proxy_http_version") == ["1.1"]
    assert directive(server.block, "proxy_set_header") is not None
    headers = {d.args[0]: d.args[1] for d in server.block if d.name == "proxy_set_header"}
    assert headers["X-Request-ID"] == "$mldeploy_request_id" and headers["Connection"] == ""
    pages = {d.args[0]: d.args[1] for d in server.block if d.name == "error_page"}
    assert {"413", "502", "504"} <= pages.keys()
    found = locations()
    for code, target in pages.items():
        block = found[target]
        assert directive(block, "default_type") == ["application/json"]
        returned = directive(block, "return")
        assert returned[0] == code and json.loads(returned[1])["message"]
