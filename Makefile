# Two commands: `make run` (the bot on the embedded default) and `make test` (everything CI runs).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test check lint bench clean browser

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

# The dashboard's browser tests drive Debian's Chromium through its chromedriver;
# installed here, once, for `make test` only (we run as root on CI and dev machines),
# never by the tests; `make run` needs no apt.
browser:
	@test -x /usr/bin/chromium -a -x /usr/bin/chromedriver || \
		{ apt-get update && apt-get install -y chromium chromium-driver; }

run: $(BIN)/.installed
	$(BIN)/agentdeck run

test: $(BIN)/.installed browser lint
	$(BIN)/python -m pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check bot roster scheduler storage tests bench
	$(BIN)/ruff format --check bot roster scheduler storage tests bench
	$(BIN)/mypy
	$(BIN)/lint-imports

check: test

bench: $(BIN)/.installed
	$(BIN)/python -m bench.telegram_throughput

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
