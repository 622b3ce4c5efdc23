"""Profile one kind of /predict request in process with pyinstrument (``make bench`` installs it).

    .venv/bin/python bench/profile.py single            # the seed row, 2,000 times
    .venv/bin/python bench/profile.py columnar-10000    # also records-1000, instances-10000, ...

For the live server, py-spy attaches to the gunicorn workers:
``py-spy record --subprocesses -p <master pid> -d 10 -o profile.svg`` while bench/run.sh loads it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from pyinstrument import Profiler

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import bodies  # bench/run.py also puts the repository on sys.path

from mldeploy.http.app import create_app


def main(kind: str = "single") -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        body = bodies(work)[kind].read_bytes()
        client = create_app({"MODEL_DIR": str(work / "models"), "WARMUP": False}).test_client()
        assert client.post("/predict", data=body, content_type="application/json").status_code == 200
        repeat = 2_000 if kind == "single" else 20
        profiler = Profiler(interval=0.0002)
        with profiler:
            for _ in range(repeat):
                client.post("/predict", data=body, content_type="application/json")
        print(profiler.output_text(unicode=True, color=False))


if __name__ == "__main__":
    main(*sys.argv[1:])
