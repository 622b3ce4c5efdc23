# The project's verbs. Each target builds the virtualenv it needs first, so on a fresh machine
# with Python 3.11 and make, `make run` and `make test` are the whole set-up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 5000

.PHONY: run test lint format bench bench-servers bench-servers-compare bench-deps bench-soak clean system-deps notebook

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Stamp files record which requirements are installed; editing a requirements file reinstalls.
# The project itself is installed editable (`pip install -e .`), so `mldeploy`, `modeler` and
# `mldeploy_client` import from any folder (a notebook's kernel starts in notebooks/).
$(VENV)/.runtime: requirements.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.dev: requirements.txt pyproject.toml requirements-dev.txt requirements-onnx.txt requirements-parquet.txt requirements-dask.txt requirements-notebook.txt requirements-granian.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@ $(VENV)/.runtime $(VENV)/.notebook

$(VENV)/.notebook: requirements.txt pyproject.toml requirements-notebook.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-notebook.txt
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@ $(VENV)/.runtime

$(VENV)/.bench: requirements.txt requirements-bench.txt requirements-granian.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-bench.txt
	touch $@

run: $(VENV)/.runtime  ## serve the API on $(HOST):$(PORT)
	$(BIN)/python app.py --host $(HOST) --port $(PORT)

# Runs notebooks/client.ipynb against the server at MLDEPLOY_URL (default http://localhost:5000:
# `make run` in another terminal) as Jupyter would, and writes the executed copy to build/.
notebook: $(VENV)/.notebook  ## execute the client notebook against a running server
	$(BIN)/jupyter nbconvert --to notebook --execute notebooks/client.ipynb --output-dir build --output client

# Debian packages the test suite needs, installed only when missing (CI runs as root).
# One line per need, so that others can add theirs.
system-deps:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium chromium-driver; }  # tests/test_playground.py
	@command -v nginx >/dev/null || test -x /usr/sbin/nginx || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y nginx; }  # tests/test_nginx.py
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql; }  # tests/postgres.py
	@command -v prometheus >/dev/null && command -v promtool >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y prometheus; }  # tests/test_alert_rules.py, tests/test_prometheus_real.py

# The suite in TEST_PROCESSES processes (pytest-xdist). Most of its time is spent waiting on
# servers it started, a fuzzer or a minute of Prometheus traffic, so two processes on 2 cores
# nearly halve it (19 minutes serially on a slow host, 11 in two). --dist loadfile keeps each file in
# one process: a file's servers (module fixtures) start once. TEST_PROCESSES=0 runs it serially.
TEST_PROCESSES ?= 2
test: system-deps $(VENV)/.dev lint  ## lint, then the whole test suite
	$(BIN)/python -m pytest --numprocesses $(TEST_PROCESSES) --dist loadfile

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: bench-servers $(VENV)/.dev  ## every benchmark: servers side by side, in-process rows/s, a 5-million-row file
	$(BIN)/python bench/inprocess.py
	$(BIN)/python bench/score_file.py

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Not part of `make bench`: it takes 30 minutes of the machine, and it checks stability (memory,
# descriptors, no 5xx) rather than speed. SOAK_ARGS="--minutes 3" for a short run.
bench-soak: $(VENV)/.runtime  ## 30 minutes of mixed traffic against 2 workers; appends to bench/RESULTS.md
	$(BIN)/python bench/soak.py $(SOAK_ARGS)

# The benchmark's load generator, from Debian, installed only when missing (needs root).
bench-deps:
	command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)

bench-servers: $(VENV)/.bench bench-deps  ## the servers side by side; prints a table, writes bench/RESULTS.md
	PYTHON=$(BIN)/python bash bench/run.sh

# Not part of `make bench`: about 6 minutes. MLServer, the peer, goes into build/mlserver-venv
# (installed there on first use; the project does not depend on it).
bench-servers-compare: $(VENV)/.bench $(VENV)/.runtime bench-deps  ## gunicorn sync, gthread, Granian (and MLServer) side by side; appends to bench/RESULTS.md
	$(BIN)/python bench/servers.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
