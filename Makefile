# Two commands matter: `make run` (set up and serve on SQLite) and `make test` (set up and test).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 5000

.PHONY: run test setup lint lock migration bench bench-scale clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# `make run`: the runtime dependencies only (requirements.txt), every transitive version as
# requirements.lock pins it (-c constrains, it adds nothing; the Dockerfile does the same).
$(VENV)/.runtime: requirements.txt requirements.lock | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt -c requirements.lock
	touch $@

# `make test` and the other tools: exactly what requirements.lock pins (runtime and dev).
$(VENV)/.installed: requirements.lock | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.lock
	touch $@

setup: $(VENV)/.installed

## Re-pin requirements.lock after editing requirements*.txt (`make lock LOCK_FLAGS=--upgrade`
## also moves the unpinned transitive dependencies to their newest releases).
lock: setup
	$(BIN)/pip-compile --quiet --strip-extras --no-emit-index-url --no-emit-find-links \
		$(LOCK_FLAGS) --output-file=requirements.lock requirements-dev.txt

## Serve on http://localhost:$(PORT) with SQLite and console SMS/e-mail backends.
run: $(VENV)/.runtime
	$(BIN)/flask --app authserver db upgrade
	PUBLIC_BASE_URL=$${PUBLIC_BASE_URL:-http://localhost:$(PORT)} \
		$(BIN)/flask --app authserver run --port $(PORT)

## Run every test (SQLite and MySQL/MariaDB from TEST_DATABASE_URL, browser tests in Chromium).
test: setup
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -p no:cacheprovider

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

## Regenerate the initial migration from the models (nothing has shipped yet to migrate from).
migration: setup
	rm -f migrations/versions/0001_initial_schema.py /tmp/authserver-migration.db
	DATABASE_URL=sqlite:////tmp/authserver-migration.db SECRET_KEY=migration-only-secret-key-000 \
		$(BIN)/flask --app authserver db migrate -m "initial schema" --rev-id 0001
	rm -f /tmp/authserver-migration.db

## Speed against the ceiling (bench/README.md): MariaDB at 127.0.0.1:3306 (root), Redis at
## 127.0.0.1:6379, wrk if installed. Prints one table, writes bench/results.json.
## `make bench BENCH_ARGS="--set DB_CAUSAL_READS=true"` measures authserver with a setting.
bench: setup
	$(BIN)/python bench/run.py $(BENCH_ARGS)

## The same at 10,000 and at 1,000,000 users side by side (loads the million once, then reuses it).
bench-scale: setup
	$(BIN)/python bench/run.py --scale $(BENCH_ARGS)

clean:
	rm -rf $(VENV) instance test-output
