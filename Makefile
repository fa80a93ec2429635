# etude: `make demo` runs the quickstart experiment, `make test` runs every check.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test lint typecheck pytest bench clean slurm-up slurm-down pg-up pg-down

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) examples/quickstart.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples

typecheck: $(STAMP)
	$(VENV)/bin/mypy

pytest: $(STAMP)
	$(VENV)/bin/pytest -n 2 -q

test: lint typecheck pytest

# A real single-node Slurm cluster (root, Debian) for tests/slurm; the tests start it on
# their own, these targets are for working by hand. Its files live in /tmp/etude-slurm.
slurm-up:
	$(PYTHON) tests/slurm_cluster.py up

slurm-down:
	$(PYTHON) tests/slurm_cluster.py down

# A throwaway PostgreSQL server (127.0.0.1:55432, trust auth, no fsync) for the store tests;
# the tests start it on their own too. Its files live in /dev/shm/etude-pg.
pg-up:
	$(PYTHON) tests/pg_server.py up

pg-down:
	$(PYTHON) tests/pg_server.py down

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) .venv-bench .pytest_cache .mypy_cache .ruff_cache runs
