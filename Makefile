# runql: `make run` serves GraphiQL with demo data; `make test` runs every test.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
export RUNQL_DATABASE_URL ?= sqlite+aiosqlite:///./runql.db

.PHONY: run test lint typecheck bench schema clean graphiql browser codegen

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

# GraphiQL, bundled from the npm packages by esbuild (web/build.mjs) into hashed files and a
# manifest in runql/graphiql/static/, which runql serves under /graphql/static/.
GRAPHIQL := runql/graphiql/static/manifest.json
$(GRAPHIQL): node_modules/.installed web/build.mjs $(wildcard web/*.jsx web/*.css)
	node web/build.mjs

graphiql: $(GRAPHIQL)

# Debian's Chromium for the browser tests: Playwright drives it and downloads no browser.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@[ "$$(id -u)" = 0 ] || { echo "The browser tests need Debian's chromium:" \
		"run 'make browser' as root (apt-get install chromium)"; exit 1; }
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		chromium fonts-liberation >/dev/null

browser: $(CHROMIUM)

run: $(VENV)/.installed $(GRAPHIQL)
	$(BIN)/runql migrate
	$(BIN)/runql demo --if-empty
	RUNQL_ENV=development $(BIN)/runql serve

# pytest on both cores (pytest-xdist), each test file whole on one worker, so that a file's
# module-scoped servers start once. Each worker makes its own templates, PostgreSQL databases
# (named by its pid), temporary folders and ports; the files that start several runql processes
# share one worker (ONE_WORKER in tests/conftest.py). `make test TEST_WORKERS=0`: one process.
TEST_WORKERS ?= 2

test: $(VENV)/.installed node_modules/.installed $(GRAPHIQL) $(CHROMIUM)
	$(BIN)/ruff check runql tests bench
	$(BIN)/ruff format --check runql tests bench
	$(BIN)/mypy runql tests bench
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile

lint: $(VENV)/.installed
	$(BIN)/ruff check runql tests bench
	$(BIN)/ruff format --check runql tests bench

typecheck: $(VENV)/.installed
	$(BIN)/mypy runql tests bench

# The served-path benchmark (bench/serve.py) pins servers and its load generator with taskset
# (2 cores or more) and runs on SQLite and on the PostgreSQL at 127.0.0.1:5432 unless told
# otherwise: `make bench BENCH_DATABASES=sqlite`; both servers run on uvicorn unless told
# otherwise: `make bench BENCH_SERVER=granian`.
BENCH_DATABASES ?= both
BENCH_SERVER ?= uvicorn

bench: $(VENV)/.installed
	$(BIN)/python bench/feed.py
	$(BIN)/python bench/serve.py --database $(BENCH_DATABASES) --server $(BENCH_SERVER)

# Typed documents of queries/ for TypeScript clients (examples/codegen.ts), into examples/gql/.
codegen: node_modules/.installed
	node_modules/.bin/graphql-codegen --config examples/codegen.ts

schema: $(VENV)/.installed
	$(BIN)/runql export-schema --output schema.graphql

clean:
	rm -rf $(VENV) runql.db runql.db-shm runql.db-wal
