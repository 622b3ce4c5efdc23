"""Instructions per request, counted by valgrind's callgrind: the floor and mldeploy, in one run.

On a shared machine wall and CPU times of one request move by 10-50 % from run to run; the
number of instructions a request executes does not (callgrind counts them, whatever else the
machine does). Each variant is one process that builds the app, answers the seed row's
``POST /predict`` through the WSGI app (as bench/request_parts.py does, metrics in
multiprocess mode, the log line to /dev/null) to warm up, switches callgrind's counting on
(``callgrind_control``) and then answers ``--requests`` more; the same process with none more
gives the cost of switching on, and the difference per request is the figure. The prediction
log's writer thread runs in the same process, and is flushed before the count ends, so with the
log on its work is counted.

    python bench/instructions.py [--requests 1000]   # about 3 minutes per variant on 2 cores
    python bench/instructions.py --parts --jobs 1    # each hook's count too, one process at a time

Variants: the floor (bench/floor_app.py), mldeploy with the prediction log off, mldeploy as it
serves by default (log on); with ``--parts`` also mldeploy without each of its per-request hooks
in turn (by the module that registers it, as bench/request_parts.py leaves them out) and with
none: the difference from the whole is what that hook costs. Prints a table; asserts nothing.
Needs valgrind (Debian's package).

Under callgrind a process runs about 50 times slower, so the work the clock drives (the log
writer's flush interval, the model pointer's poll) comes round every few requests, and more often
the more variants run at once: ``--jobs 1`` runs them one after another, for the steadiest counts
(the default runs one per core). Compare counts from runs made alike.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VARIANTS = ("floor", "mldeploy, log off", "mldeploy")
WHOLE = "mldeploy"
# The modules whose per-request hooks --parts leaves out one at a time: the request id, the key
# check, the security headers, the prediction log, the metrics, the log line.
PARTS = (
    "mldeploy.http.request_context",
    "mldeploy.http.auth",
    "mldeploy.http.security_headers",
    "mldeploy.monitoring.recording",
    "mldeploy.http.metrics",
    "mldeploy.http.request_log",
)
WITHOUT = "mldeploy without "
NO_HOOKS = "mldeploy, no hooks (the route alone)"
COLLECTED = re.compile(r"Collected : (\d+)")
WARM_UP = 300  # requests before counting: the model is trained and every cache filled


def child(variant: str, requests: int) -> None:
    """In the measured process: build the app, warm it up, answer ``requests`` more."""
    import gc
    import logging

    sys.path[:0] = [str(REPO), str(BENCH)]
    import floor_app
    import request_parts  # sets PROMETHEUS_MULTIPROC_DIR before prometheus-client is imported

    from mldeploy.http.app import create_app
    from mldeploy.http.request_log import configure_logging
    from mldeploy.monitoring import recording

    configure_logging("INFO")
    devnull = open(os.devnull, "w")  # noqa: SIM115 - open for the process's life
    for handler in logging.getLogger().handlers:
        handler.setStream(devnull)
    work = Path(tempfile.mkdtemp(prefix="mldeploy-instructions-"))
    if variant == "floor":
        app = floor_app.app
    else:
        config = {"MODEL_DIR": str(work / "models"), "WARMUP": False}
        if variant == "mldeploy, log off":
            config["LOG_PREDICTIONS"] = False
        app = create_app(config)
        leave_out(app, variant)
    prediction_log = app.extensions.get(recording.EXTENSION) if variant != "floor" else None
    request_parts.cpu_us_per_request(app, WARM_UP)
    if prediction_log is not None:
        prediction_log.flush()  # the writer thread writes what the warm-up queued
    gc.collect()
    gc.freeze()
    # Counting starts here (callgrind runs with --instr-atstart=no): start-up, training and the
    # warm-up are left out, so that the count is the requests' own and not the difference of two
    # processes' start-ups, which vary by more than the requests cost.
    subprocess.run(["callgrind_control", "--instr=on", str(os.getpid())], check=True, capture_output=True)
    if requests:
        request_parts.cpu_us_per_request(app, requests)
    if prediction_log is not None:
        prediction_log.flush()  # and what the measured requests queued
    os._exit(0)  # no interpreter shutdown: the same for both counts, and faster


def leave_out(app: object, variant: str) -> None:
    """Take out the hooks a ``--parts`` variant goes without: those its module registered (a
    ``before_request`` hook, or a reader of request_context's one ``after_request`` hook), or
    every hook for NO_HOOKS."""
    from mldeploy.http import request_context

    readers = app.extensions[request_context.READERS]
    if variant == NO_HOOKS:
        app.before_request_funcs[None], app.after_request_funcs[None] = [], []
        readers[:] = []
    elif variant.startswith(WITHOUT):
        module = variant.removeprefix(WITHOUT)
        before = app.before_request_funcs[None]
        before[:] = [hook for hook in before if hook.__module__ != module]
        readers[:] = [read for read in readers if read.__module__ != module]


def counted(variant: str, requests: int) -> int:
    """Instructions of one child process under callgrind."""
    with tempfile.TemporaryDirectory() as out:
        result = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--instr-atstart=no",
                f"--callgrind-out-file={out}/callgrind.out",
                sys.executable,
                __file__,
                "--child",
                variant,
                "--requests",
                str(requests),
            ],
            capture_output=True,
            text=True,
            check=False,
            # One hash seed for every child: string hashes order sets and dict probes, and so
            # move the count by a few per cent from one process to the next.
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    found = COLLECTED.search(result.stderr)
    if result.returncode != 0 or found is None:
        raise RuntimeError(f"{variant}: callgrind failed: {result.stderr[-2000:]}")
    return int(found.group(1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--parts", action="store_true", help="also mldeploy without each per-request hook")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="callgrind processes at once")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.requests)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    variants = [*VARIANTS, *([WITHOUT + part for part in PARTS] + [NO_HOOKS] if args.parts else [])]
    jobs = [(variant, n) for variant in variants for n in (0, args.requests)]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        totals = dict(zip(jobs, pool.map(lambda job: counted(*job), jobs), strict=True))
    per_request = {v: (totals[(v, args.requests)] - totals[(v, 0)]) / args.requests for v in variants}
    floor, whole = per_request["floor"], per_request[WHOLE]
    print(f"Instructions per POST /predict (seed row), in process, callgrind, {args.requests:,} requests")
    print("| variant | instructions per request | vs the floor | cost of the part |")
    print("| --- | ---: | ---: | ---: |")
    for variant in variants:
        part = f"{whole - per_request[variant]:,.0f}" if variant.startswith(WITHOUT) or variant == NO_HOOKS else ""
        print(f"| {variant} | {per_request[variant]:,.0f} | {per_request[variant] / floor:.2f}x | {part} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
