# FlowForge developer commands. Every target installs what it needs into a
# virtual environment ($(VENV)), so they work on a fresh machine.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
SRC := flowforge tests examples benchmarks docs/conf.py docs/_ext

.PHONY: dev-install install demo test test-postgres stress lint format typecheck docs bench bench-dask bench-postgres check clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.extras-installed: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e ".[all]"
	touch $@

# The development tools and every integration, so that all the tests run.
$(VENV)/.dev-installed: $(PY) pyproject.toml
	$(PY) -m pip install --quiet -e ".[dev,all]"
	touch $@

install: $(VENV)/.installed

dev-install: $(VENV)/.dev-installed

demo: install
	$(PY) examples/basic_example.py

test: dev-install
	$(PY) -m pytest --cov --cov-report=term

lint: dev-install
	$(PY) -m black --check $(SRC)
	$(PY) -m flake8 $(SRC)
	$(VENV)/bin/lint-imports --no-cache

format: dev-install
	$(PY) -m black $(SRC)

typecheck: dev-install
	$(PY) -m mypy

docs: dev-install
	$(PY) -m sphinx -W -n --keep-going -b html docs docs/_build/html

# The core benchmark scripts (core library only); the integrations have
# their own targets, which install their extras.
BENCH := dispatch shapes memory durable concurrency async flow_size hop_size json_checkpoint

bench: install
	for name in $(BENCH); do $(PY) benchmarks/bench_$$name.py || exit 1; done

bench-dask: $(VENV)/.extras-installed
	$(PY) benchmarks/bench_dask.py

# Uses $$FLOWFORGE_TEST_POSTGRES_DSN, or starts a throwaway server.
bench-postgres: $(VENV)/.extras-installed
	$(PY) benchmarks/bench_postgres.py

# The PostgreSQL store's tests; they start a throwaway server when
# FLOWFORGE_TEST_POSTGRES_DSN is not set (see scripts/pg_test_server.sh).
test-postgres: dev-install
	$(PY) -m pytest -q tests/test_store_postgres.py

# Run the concurrency tests 20 times in a row: a flaky race shows up here.
stress: dev-install
	for run in $$(seq 20); do $(PY) -m pytest -q -p no:cacheprovider tests/test_concurrency.py || exit 1; done

check: lint typecheck test docs

clean:
	rm -rf $(VENV) .ci-venv docs/_build .coverage .mypy_cache .pytest_cache build *.egg-info
