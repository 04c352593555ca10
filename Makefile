# runql: `make run` serves GraphiQL with demo data; `make test` runs every test.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export RUNQL_DATABASE_URL ?= sqlite+aiosqlite:///./runql.db

.PHONY: run test lint typecheck bench schema clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# Reference clients written by others (graphql-ws, graphql-http) that the tests drive.
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

run: $(VENV)/.installed
	$(BIN)/runql migrate
	$(BIN)/runql demo --if-empty
	RUNQL_ENV=development $(BIN)/runql serve

test: $(VENV)/.installed node_modules/.installed
	$(BIN)/ruff check runql tests bench
	$(BIN)/mypy runql
	$(BIN)/pytest

lint: $(VENV)/.installed
	$(BIN)/ruff check runql tests bench

typecheck: $(VENV)/.installed
	$(BIN)/mypy runql

bench: $(VENV)/.installed
	$(BIN)/python bench/feed.py

schema: $(VENV)/.installed
	$(BIN)/runql export-schema --output schema.graphql

clean:
	rm -rf $(VENV) runql.db runql.db-shm runql.db-wal
