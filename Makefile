# airflow-mlops: every set-up step lives here, so a fresh machine with Python 3.11, make and git can
# run `make demo` and `make test` and nothing else.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
UV_VERSION := 0.13.9
# The test and demo runs get their own Airflow home unless the caller sets one.
DEMO_HOME ?= $(CURDIR)/.demo

.PHONY: install demo test test-fast test-unit test-unit-operators test-unit-rest lint typecheck security docs pytest lock bench topology clean airflow ui-deps

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Bytecode is compiled at install, as pip does in a deployment: this machine kind sets
# PYTHONDONTWRITEBYTECODE=1, and without .pyc files every process recompiles Airflow (13 s vs 6 s to import a task's libraries).
$(VENV)/.installed: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"
	$(BIN)/uv pip install --python $(BIN)/python --constraint constraints.txt --editable '.[dev,deploy,docs]' --compile-bytecode
	touch $@

install: $(VENV)/.installed ## create .venv and install the locked dependency set

lock: | $(BIN)/python ## re-resolve constraints.txt from pyproject.toml
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"
	$(BIN)/uv pip compile pyproject.toml --extra dev --extra deploy --extra docs --python-version 3.11 --output-file constraints.txt

lint: install
	$(BIN)/ruff check airflow_mlops dags tests bench scripts examples plugins docs

typecheck: install
	$(BIN)/mypy

# bandit and the strict docs build each run once in `make test`, as tests of its pytest run, which also
# check what the plain commands cannot: every `# nosec` gives its reason (tests/reliability/test_security.py);
# every class, option and task has its reference entry (tests/unit/test_docs.py, building into a temporary
# folder). `make security` runs that bandit test alone; `make docs` builds the site into site/.
BANDIT_TEST := tests/reliability/test_security.py::test_bandit_finds_nothing_unexplained_in_the_provider

security: install ## bandit over the provider: zero findings; each accepted one says why inline (# nosec Bxxx: reason)
	$(BIN)/pytest -q $(BANDIT_TEST)

docs: install ## the documentation site (MkDocs Material + mkdocstrings) into site/; --strict: a broken reference fails
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

pytest: install ui-deps
	CI=$${CI:-} $(BIN)/pytest

# Tiers (tests/conftest.py: a test's folder decides; `--tier` collects only the folders that can hold one).
test-fast: lint ## ruff + the pure unit tests (no process, database, store or server): under a minute
	CI=$${CI:-} $(BIN)/pytest --tier fast -q

# Two pytest processes, one per core: the operator tests (most of the time) and the rest of the tier.
# Each has its own Airflow home, data root and embedded stores (tests/conftest.py); -O keeps their output apart.
UNIT_OPERATORS := tests/unit/operators tests/unit/sensors

test-unit: lint ## ruff + the fast tier + operators, sensors, DAGs and real data on the embedded stores: under 5 minutes
	$(MAKE) --no-print-directory -j2 -O test-unit-operators test-unit-rest

test-unit-operators: install
	CI=$${CI:-} $(BIN)/pytest --tier unit -q $(UNIT_OPERATORS)

test-unit-rest: install
	CI=$${CI:-} $(BIN)/pytest --tier unit -q $(addprefix --ignore=,$(UNIT_OPERATORS))

test: lint typecheck pytest ## ruff, mypy and the whole pytest suite (unit, dags, byod, e2e, integration, reliability with bandit, topology, ui, the strict docs build)

demo: ## run the reference DAGs end to end on the embedded default (the install's output goes to .install.log)
	@test -f $(VENV)/.installed || echo "Installing the locked set into $(VENV) (a few minutes; output in .install.log) ..."
	@$(MAKE) --no-print-directory install > .install.log 2>&1 || { tail -n 40 .install.log; exit 1; }
	AIRFLOW_HOME=$(DEMO_HOME) $(BIN)/python scripts/demo.py

airflow: ## the Airflow UI locally on 127.0.0.1, opening .demo/ (or $$AIRFLOW_HOME); prints URLs, login, what to trigger
	@test -f $(VENV)/.installed || echo "Installing the locked set into $(VENV) (a few minutes; output in .install.log) ..."
	@$(MAKE) --no-print-directory install > .install.log 2>&1 || { tail -n 40 .install.log; exit 1; }
	$(BIN)/python scripts/airflow_local.py

# tests/ui drive Debian's Chromium with playwright-core (npm); nothing downloads a browser build.
UI_BROWSER := tests/ui/browser
ui-deps: /usr/bin/chromium $(UI_BROWSER)/node_modules/.package-lock.json ## Chromium + playwright-core for tests/ui

/usr/bin/chromium:
	apt-get install -y chromium || (apt-get update && apt-get install -y chromium)

$(UI_BROWSER)/node_modules/.package-lock.json: $(UI_BROWSER)/package-lock.json
	command -v npm >/dev/null || apt-get install -y nodejs npm || (apt-get update && apt-get install -y nodejs npm)
	cd $(UI_BROWSER) && npm ci --no-audit --no-fund

topology: install ## only the docker-compose topology as local processes (make test runs it too)
	CI=$${CI:-} $(BIN)/pytest -m topology

bench: install ## benchmarks (not part of make test); rewrites bench/RESULTS.md (~30 min on 2 cores)
	$(BIN)/python bench/run.py --repeat 3

clean:
	rm -rf $(VENV) $(DEMO_HOME) .airflow site test-artifacts $(UI_BROWSER)/node_modules .pytest_cache .mypy_cache .ruff_cache
