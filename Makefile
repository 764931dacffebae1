# convo: `make serve` runs the server, `make test` runs every check. Both install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test install system-deps test-deps lint typecheck pytest bench

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $@

install: $(BIN)/.installed

system-deps:
	@sh scripts/system-deps.sh

test-deps:
	@sh scripts/system-deps.sh test

serve: install system-deps
	$(BIN)/convo serve

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: install
	$(BIN)/mypy

pytest: install test-deps
	$(BIN)/pytest -q

test: lint typecheck pytest

bench: install system-deps
	$(BIN)/python -m bench
