"""Instructions per request, counted by valgrind's callgrind: the floor and mldeploy, in one run.

On a shared machine wall and CPU times of one request move by 10-50 % from run to run; the
number of instructions a request executes does not (callgrind counts them, whatever else the
machine does). Each variant is one process that builds the app, answers the seed row's
``POST /predict`` through the WSGI app (as bench/request_parts.py does, metrics in
multiprocess mode, the log line to /dev/null) and then answers ``--requests`` more; the same
process with none more gives its start-up, and the difference per request is the figure. The
prediction log's writer thread runs in the same process, so with the log on its work is counted.

    python bench/instructions.py [--requests 1000]   # about 3 minutes per variant on 2 cores

Variants: the floor (bench/floor_app.py), mldeploy with the prediction log off, mldeploy as it
serves by default (log on). Prints a table; asserts nothing. Needs valgrind (Debian's package).
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
COLLECTED = re.compile(r"Collected : (\d+)")
WARM_UP = 300  # requests before counting: the model is trained and every cache filled


def child(variant: str, requests: int) -> None:
    """In the measured process: build the app, warm it up, answer ``requests`` more."""
    import gc
    import logging
    import time

    sys.path[:0] = [str(REPO), str(BENCH)]
    import floor_app
    import request_parts  # sets PROMETHEUS_MULTIPROC_DIR before prometheus-client is imported

    from mldeploy.http.app import create_app
    from mldeploy.http.request_log import configure_logging

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
    request_parts.cpu_us_per_request(app, WARM_UP)
    gc.collect()
    gc.freeze()
    time.sleep(1.5)  # the writer thread flushes what the warm-up queued
    if requests:
        request_parts.cpu_us_per_request(app, requests)
    time.sleep(1.5)  # and what the measured requests queued
    os._exit(0)  # no interpreter shutdown: the same for both counts, and faster


def counted(variant: str, requests: int) -> int:
    """Instructions of one child process under callgrind."""
    with tempfile.TemporaryDirectory() as out:
        result = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
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
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.requests)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install valgrind)", file=sys.stderr)
        return 2
    jobs = [(variant, n) for variant in VARIANTS for n in (0, args.requests)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        totals = dict(zip(jobs, pool.map(lambda job: counted(*job), jobs), strict=True))
    per_request = {v: (totals[(v, args.requests)] - totals[(v, 0)]) / args.requests for v in VARIANTS}
    floor = per_request["floor"]
    print(f"Instructions per POST /predict (seed row), in process, callgrind, {args.requests:,} requests")
    print("| variant | instructions per request | vs the floor |")
    print("| --- | ---: | ---: |")
    for variant in VARIANTS:
        print(f"| {variant} | {per_request[variant]:,.0f} | {per_request[variant] / floor:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
