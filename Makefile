# Two commands: `make run` (the bot on the embedded default) and `make test` (everything CI runs).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
NODE := $(VENV)/node
CODEX_VERSION := 0.171.0
EVERYTHING_VERSION := 2026.8.31
PEERS := .venv-peers
ERRBOT_VERSION := 6.2.1
PEERS_OPENAI_VERSION := 3.63.0

.PHONY: run test check lint bench bench-peers clean browser agent-clis mcp-servers

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

# The coding-agent CLIs that tests/test_claude_cli.py and tests/test_codex_cli.py drive
# against local fakes: claude-agent-sdk (the `claude` extra; its wheel bundles the native
# `claude` binary, so no npm for Claude Code) and Codex from npm, into the venv's own
# node directory. For `make test` only; each step is skipped once its stamp exists.
agent-clis: $(BIN)/.claude-extra $(NODE)/.codex-$(CODEX_VERSION)

$(BIN)/.claude-extra: $(BIN)/.installed pyproject.toml
	$(BIN)/python -m pip install --quiet -e '.[dev,claude]'
	touch $@

# npm prunes what an install does not name from a prefix, so each package gets its own.
$(NODE)/.codex-$(CODEX_VERSION):
	npm install --prefix $(NODE)/codex --no-save --no-package-lock --no-audit --no-fund \
		--loglevel=error @openai/codex@$(CODEX_VERSION)
	touch $@

# A real third-party MCP server from npm for tests/test_mcp_tools.py (stdio and streamable
# HTTP), into the venv's node directory; `mcp-server-time` comes from PyPI with the dev
# extra. For `make test` only, never `make run`.
mcp-servers: $(NODE)/.server-everything-$(EVERYTHING_VERSION)

$(NODE)/.server-everything-$(EVERYTHING_VERSION):
	npm install --prefix $(NODE)/mcp --no-save --no-package-lock --no-audit --no-fund \
		--loglevel=error @modelcontextprotocol/server-everything@$(EVERYTHING_VERSION)
	touch $@

run: $(BIN)/.installed
	$(BIN)/agentdeck run

test: $(BIN)/.installed agent-clis mcp-servers browser lint
	$(BIN)/python -m pytest

lint: $(BIN)/.installed
	$(BIN)/ruff check bot roster scheduler storage tests bench
	$(BIN)/ruff format --check bot roster scheduler storage tests bench
	$(BIN)/mypy
	$(BIN)/mypy --config-file mypy-tests.ini tests bench
	$(BIN)/lint-imports

check: test

bench: $(BIN)/.installed
	$(BIN)/python -m bench.telegram_bench

# The bots agentdeck is compared with in bench.telegram_bench, beside the bare
# python-telegram-bot ones: Errbot with its Telegram backend, which needs
# python-telegram-bot 13 (ours is 22), so in a venv of its own. Not part of `make test`;
# tests/test_bench_floors.py uses it when it is there.
bench-peers: $(PEERS)/.installed

$(PEERS)/.installed: Makefile
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet 'errbot[telegram]==$(ERRBOT_VERSION)' \
		'openai==$(PEERS_OPENAI_VERSION)'
	touch $@

clean:
	rm -rf $(VENV) $(PEERS) .pytest_cache .mypy_cache .ruff_cache
