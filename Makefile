# optuna-nas: `make demo` runs a real architecture search, `make test` runs the suite.
# Both create .venv on first use and install the package into it.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The PyTorch build pip should take; override e.g. TORCH_SPEC="torch torchvision".
TORCH_SPEC ?= torch==2.14.1 torchvision==0.29.1
PYTEST_ARGS ?=

.PHONY: install demo test test-fast lint typecheck docs check min-versions clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade --quiet pip

$(VENV)/.installed: $(BIN)/python setup.cfg pyproject.toml
	$(BIN)/python -m pip install --quiet $(TORCH_SPEC)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/optuna-nas search

test: install
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# Unit tests only: no database servers, processes, HTTP or whole searches (under a minute).
test-fast: install
	$(BIN)/python -m pytest -m "not integration and not e2e and not slow" $(PYTEST_ARGS)

# The documentation site; warnings are errors.
docs: install
	$(BIN)/python -m sphinx -W --keep-going -b html -q docs docs/_build/html

# The lowest declared dependency versions, with a smoke subset of the tests.
min-versions: install
	bash .ci/min_versions

lint: install
	$(BIN)/ruff check optuna_nas tests examples samplers
	$(BIN)/ruff format --check optuna_nas tests examples samplers

typecheck: install
	$(BIN)/mypy optuna_nas

check: lint typecheck docs test

clean:
	rm -rf $(VENV) .venv-min build *.egg-info .pytest_cache .mypy_cache .ruff_cache docs/_build
