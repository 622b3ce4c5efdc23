"""What each part of mldeploy's own per-request work costs, in CPU microseconds per request.

One process calls the WSGI app directly (no server, no sockets) with the environ gunicorn would
pass for the seed row's ``POST /predict``, metrics in multiprocess mode and the JSON log line
written to /dev/null, as under ``python -m mldeploy serve``. It measures, interleaved in rounds:

- the framework floor (``bench/floor_app.py``) and mldeploy, whole;
- mldeploy without each of its ``before_request`` hooks, and without each reader of its one
  ``after_request`` hook (``request_context.finish``), in turn: the difference is what that part
  costs (its work, and Flask's call of a hook);
- mldeploy with no hooks at all: the route itself (parse, validate, predict, answer).

    .venv/bin/python bench/request_parts.py   # BENCH_PARTS_ROUNDS=200 runs of BENCH_PARTS_REQUESTS=200

CPU time (``time.process_time``), the minimum over the rounds: other work on the machine moves it
far less than wall time. Prints a table; asserts nothing.
"""

from __future__ import annotations

import gc
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
# prometheus-client picks its multiprocess store at import, as gunicorn_conf.py arranges it.
METRICS_DIR = tempfile.mkdtemp(prefix="mldeploy-parts-metrics-")
os.environ["PROMETHEUS_MULTIPROC_DIR"] = METRICS_DIR
sys.path[:0] = [str(REPO), str(BENCH)]

import floor_app  # noqa: E402
from run import SEED_ROW  # noqa: E402

from mldeploy.http import request_context  # noqa: E402
from mldeploy.http.app import create_app  # noqa: E402
from mldeploy.http.request_log import configure_logging  # noqa: E402

# Many short runs, and the fastest of each: a run that other work on the machine did not
# interrupt is then likely among them.
ROUNDS = int(os.environ.get("BENCH_PARTS_ROUNDS", "200"))
REQUESTS = int(os.environ.get("BENCH_PARTS_REQUESTS", "200"))
BODY = json.dumps(SEED_ROW).encode()  # bench/run.py's body file

WsgiApp = Callable[[dict, Callable], Iterable[bytes]]


def environ() -> dict:
    """The environ of one seed-row POST, with the keys gunicorn's sync worker sets."""
    return {
        "REQUEST_METHOD": "POST",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/predict",
        "RAW_URI": "/predict",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(BODY)),
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "wrk",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40000",
        "wsgi.input": io.BytesIO(BODY),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }


def cpu_us_per_request(app: WsgiApp, n: int = REQUESTS) -> float:
    """CPU microseconds per request over ``n`` requests, body read as a server would."""
    statuses = []

    def start_response(status: str, headers: list, exc_info: object = None) -> None:
        statuses.append(status)

    start = time.process_time()
    for _ in range(n):
        out = app(environ(), start_response)
        for _chunk in out:
            pass
        close = getattr(out, "close", None)
        if close is not None:
            close()
    spent = time.process_time() - start
    if statuses[-1][:3] != "200":
        raise RuntimeError(f"the request answered {statuses[-1]}")
    return spent / n * 1e6


def hook_name(fn: Callable) -> str:
    module = getattr(fn, "__module__", "?").removeprefix("mldeploy.http.")
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"


def main() -> int:
    devnull = open(os.devnull, "w")  # noqa: SIM115 - open for the whole run
    configure_logging("INFO")
    for handler in logging.getLogger().handlers:
        handler.setStream(devnull)  # stderr of the bench's servers goes to /dev/null too
    work = Path(tempfile.mkdtemp(prefix="mldeploy-parts-"))
    try:
        app = create_app({"MODEL_DIR": str(work / "models"), "WARMUP": False})
        before = list(app.before_request_funcs.get(None, []))
        after = list(app.after_request_funcs.get(None, []))
        # The readers request_context's one after_request hook hands each answer to.
        readers = app.extensions[request_context.READERS]
        every_reader = list(readers)
        variants: dict[str, tuple[list, list, list]] = {"mldeploy": (before, after, every_reader)}
        for i, fn in enumerate(before):
            variants[f"before_request {hook_name(fn)}"] = (before[:i] + before[i + 1 :], after, every_reader)
        for i, fn in enumerate(every_reader):
            rest = every_reader[:i] + every_reader[i + 1 :]
            variants[f"reader {hook_name(fn)}"] = (before, after, rest)
        variants["no hooks (the route alone)"] = ([], [], [])

        def run(name: str) -> float:
            if name == "floor":
                return cpu_us_per_request(floor_app.app)
            hooks_before, hooks_after, kept = variants[name]
            app.before_request_funcs[None], app.after_request_funcs[None] = list(hooks_before), list(hooks_after)
            readers[:] = kept
            return cpu_us_per_request(app)

        names = ["floor", *variants]
        for name in names:  # warm up: the model is trained, caches filled
            run(name)
        # As gunicorn_conf.py's when_ready does before the fork: what is built so far is never
        # scanned again by the collector, so a run's collections are a server's.
        gc.collect()
        gc.freeze()
        best = {name: float("inf") for name in names}
        for _ in range(ROUNDS):
            for name in names:
                best[name] = min(best[name], run(name))
        floor, whole = best["floor"], best["mldeploy"]
        print(f"CPU µs per request, in process (min of {ROUNDS} rounds of {REQUESTS:,}); load: {os.getloadavg()}")
        print("| what | µs per request | cost of the part |")
        print("| --- | ---: | ---: |")
        print(f"| floor (Flask-RESTful, fixed answer) | {floor:.1f} | |")
        print(f"| mldeploy, whole | {whole:.1f} | {whole / floor:.2f}x the floor |")
        for name in names[2:]:
            label = f"without {name}" if name.startswith(("before", "reader")) else name
            print(f"| {label} | {best[name]:.1f} | {whole - best[name]:.1f} |")
        hooks = whole - best["no hooks (the route alone)"]
        print(f"| every hook together | | {hooks:.1f} ({hooks / floor * 100:.0f} % of the floor) |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(METRICS_DIR, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
