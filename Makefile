# Two commands matter: `make run` (set up and serve on SQLite) and `make test` (set up and test).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PORT   ?= 5000

.PHONY: run test setup lint migration bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

## Serve on http://localhost:$(PORT) with SQLite and console SMS/e-mail backends.
run: setup
	$(BIN)/flask --app authserver db upgrade
	PUBLIC_BASE_URL=$${PUBLIC_BASE_URL:-http://localhost:$(PORT)} \
		$(BIN)/flask --app authserver run --port $(PORT)

## Run every test (SQLite and MySQL/MariaDB from TEST_DATABASE_URL, browser tests in Chromium).
test: setup
	$(BIN)/ruff check .
	$(BIN)/pytest -p no:cacheprovider

lint: setup
	$(BIN)/ruff check .

## Regenerate the initial migration from the models (nothing has shipped yet to migrate from).
migration: setup
	rm -f migrations/versions/0001_initial_schema.py /tmp/authserver-migration.db
	DATABASE_URL=sqlite:////tmp/authserver-migration.db SECRET_KEY=migration-only-secret-key-000 \
		$(BIN)/flask --app authserver db migrate -m "initial schema" --rev-id 0001
	rm -f /tmp/authserver-migration.db

bench: setup
	$(BIN)/python bench/verify_tokens.py
	$(BIN)/python bench/http_verify.py

clean:
	rm -rf $(VENV) instance test-output
