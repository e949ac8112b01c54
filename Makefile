# The two commands of the README: `make run` and `make test`.
# Both create .venv on first use and reinstall when pyproject.toml changes.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint typecheck docs pytest bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --quiet --editable '.[dev]'
	touch $@

## Install, then serve on the embedded default (SQLite file + in-process cache).
run: $(BIN)/.installed
	$(BIN)/amplify-auth-server

## Install, then run every check CI runs: lint, types, docs, tests.
test: $(BIN)/.installed lint typecheck docs pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(BIN)/.installed
	$(BIN)/mypy

docs: $(BIN)/.installed
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir $(VENV)/site

pytest: $(BIN)/.installed
	# The console's browser tests need the system Chromium.
	./scripts/ensure-chromium.sh
	# Two workers, a test file each at a time (module fixtures start servers
	# once per file): most tests wait on server processes, not on a core.
	$(BIN)/pytest -n 2 --dist loadfile --cov --cov-report=term

bench: $(BIN)/.installed
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage* site
