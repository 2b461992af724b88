# The developer commands, shared by people and CI. `make help` lists them.
# Two commands matter on a fresh clone: `make demo` (set up and run Rapport) and `make test`.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install demo run test test-fast lint typecheck imports check fmt bench reliability eval clean

help:  ## List the commands
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch==2.13.0 is pinned in pyproject.toml; see the comment there.
	$(BIN)/pip install --quiet -e '.[dev]'
	# The default embedding backend (onnx-int8) exports the model once; do it now, not at first start.
	$(BIN)/rapport model prepare
	touch $(STAMP)

install: $(STAMP)  ## Create .venv, install Rapport with its development tools, prepare the embedding model

demo: $(STAMP)  ## Start Rapport on its defaults (SQLite, no tokens): a web check-in and the dashboard
	$(BIN)/rapport demo

run: $(STAMP)  ## Run the service (rapport run) on config.yaml
	$(BIN)/rapport run

test: $(STAMP)  ## Set up and run the whole test suite (PostgreSQL too when RAPPORT_TEST_DATABASE_URL is set)
	$(BIN)/python -m pytest

test-fast: $(STAMP)  ## Tests without the real model
	$(BIN)/python -m pytest -m "not model and not slow"

lint: $(STAMP)  ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)  ## mypy
	$(BIN)/mypy

imports: $(STAMP)  ## import-linter: the direction of dependencies
	$(BIN)/lint-imports

check: lint typecheck imports test  ## Everything CI checks

fmt: $(STAMP)  ## Format and fix what ruff can
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP)  ## Benchmarks (print JSON)
	$(BIN)/python benchmarks/run.py

reliability: $(STAMP)  ## Kills, faults and rate limits against real `rapport run` processes (about 40 min; prints JSON)
	$(BIN)/python benchmarks/reliability.py

eval: $(STAMP)  ## Change-detection evaluation on ../shared/data (prints JSON)
	$(BIN)/python benchmarks/evaluate_changes.py

clean:  ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache data/demo.db* data/outbox-mail
