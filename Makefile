# convo: `make serve` runs the server, `make test` runs every check. Both install what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: serve test install system-deps test-deps lint typecheck pytest bench lock lock-upgrade

# Dependencies come from the lock file (exact versions with hashes: a changed or bad upstream
# release cannot slip in), then convo itself without resolving anything. `pip check` fails
# when pyproject.toml names a dependency the lock lacks: run `make lock` then.
$(BIN)/.installed: pyproject.toml requirements/dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --require-hashes -r requirements/dev.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	@$(BIN)/python -m pip check >/dev/null || { $(BIN)/python -m pip check; \
	  echo "requirements/*.txt do not cover pyproject.toml: run 'make lock'" >&2; exit 1; }
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

# Rewrite the lock files from pyproject.toml, keeping every pin that still fits
# (lock-upgrade: take the newest versions that fit). uv is pinned in the dev lock.
LOCK_ARGS := --generate-hashes --universal --python-version 3.11 -q
lock lock-upgrade:
	test -x $(BIN)/uv || { $(PYTHON) -m venv $(VENV) && $(BIN)/python -m pip install -q uv; }
	$(BIN)/uv pip compile pyproject.toml $(LOCK_ARGS) $(if $(filter lock-upgrade,$@),--upgrade) \
	  -o requirements/main.txt
	$(BIN)/uv pip compile pyproject.toml --extra dev $(LOCK_ARGS) \
	  $(if $(filter lock-upgrade,$@),--upgrade) -o requirements/dev.txt
