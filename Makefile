# airflow-mlops: every set-up step lives here, so a fresh machine with Python 3.11, make and git can
# run `make demo` and `make test` and nothing else.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.9
# The test and demo runs get their own Airflow home unless the caller sets one.
DEMO_HOME ?= $(CURDIR)/.demo

.PHONY: install demo test lint typecheck pytest lock bench topology clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --python $(BIN)/python --constraint constraints.txt --editable '.[dev,deploy]'
	touch $@

install: $(VENV)/.installed ## create .venv and install the locked dependency set

lock: | $(BIN)/python ## re-resolve constraints.txt from pyproject.toml
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra deploy --python-version 3.11 --output-file constraints.txt

lint: install
	$(BIN)/ruff check airflow_mlops dags tests bench scripts examples

typecheck: install
	$(BIN)/mypy

pytest: install
	CI=$${CI:-} $(BIN)/pytest -m "not topology"

test: lint typecheck pytest ## ruff, mypy and the whole pytest suite (unit, dags, integration, e2e)

demo: install ## run the reference DAGs end to end on the embedded default
	AIRFLOW_HOME=$(DEMO_HOME) $(BIN)/python scripts/demo.py

topology: install ## the docker-compose topology as local processes (not yet in make test: see README)
	CI=$${CI:-} $(BIN)/pytest -m topology

bench: install ## benchmarks (not part of make test); rewrites bench/RESULTS.md (~30 min on 2 cores)
	$(BIN)/python bench/run.py --repeat 3

clean:
	rm -rf $(VENV) $(DEMO_HOME) .pytest_cache .mypy_cache .ruff_cache
