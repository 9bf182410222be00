# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_DEMO := $(VENV)/.installed-demo
STAMP_TEST := $(VENV)/.installed-test

.PHONY: demo test lint fmt bench docs mlflow-suite clean chromium postgres sshd

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip==25.3

$(STAMP_DEMO): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[demo]"
	touch $@

$(STAMP_TEST): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e ".[test]"
	touch $@ $(STAMP_DEMO)

demo: $(STAMP_DEMO)
	$(BIN)/python examples/demo.py

lint: $(STAMP_TEST)
	$(BIN)/ruff check src tests benchmarks examples
	$(BIN)/ruff format --check src tests benchmarks examples
	$(BIN)/mypy
	$(BIN)/lint-imports

# The studio's browser tests drive Debian's chromium (never a downloaded browser build).
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)

# The store tests start a PostgreSQL server from the machine's binaries.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq postgresql)

# The SSH target's tests start OpenSSH's server; its user builds venvs with Debian's python3.
sshd:
	@(test -x /usr/sbin/sshd && /usr/bin/python3 -c "import ensurepip" 2>/dev/null) || (apt-get update -qq && apt-get install -y -qq openssh-server python3-venv)

# `make test` leaves out the heavy tests marked slow (real clusters, browsers, many
# servers); `make test TESTS=all` runs them too, as CI does.
TESTS ?= quick
PYTEST_MARKS := $(if $(filter all,$(TESTS)),,-m "not slow")

test: lint chromium postgres sshd
	$(BIN)/python -m pytest -q $(PYTEST_MARKS) $(PYTEST_ARGS)

fmt: $(STAMP_TEST)
	$(BIN)/ruff format src tests benchmarks examples
	$(BIN)/ruff check --fix src tests benchmarks examples

bench: $(STAMP_TEST)
	$(BIN)/python benchmarks/run.py

# The documentation site into site/ (MkDocs, strict: a broken link fails it); open
# site/index.html. CI builds it through tests/docs/test_site.py.
docs: $(STAMP_TEST)
	NO_MKDOCS_2_WARNING=1 $(BIN)/python -m mkdocs build --strict -d site

# MLflow's own tracking-server tests against `cumulo server` and, as the control, against
# MLflow's server (slow, opt-in, not part of `make test`): MLFLOW_SRC names an MLflow source
# checkout; see docs/mlflow-compatibility.md. E.g. make mlflow-suite MLFLOW_SRC=../mlflow
mlflow-suite: $(STAMP_TEST)
	@test -n "$(MLFLOW_SRC)" || (echo "Set MLFLOW_SRC to an MLflow source checkout." && exit 2)
	$(BIN)/python benchmarks/mlflow_suite/run.py $(MLFLOW_SRC) $(MLFLOW_SUITE_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info src/*.egg-info
