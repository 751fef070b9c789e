"""The coding-agent CLIs the tests drive, and the environments that keep them offline.

Claude Code is the native `claude` binary that the `claude-agent-sdk` wheel bundles (the
`claude` extra); Codex is the npm package `@openai/codex` that `make test` installs into
`.venv/node`. Both are pointed at fakes on 127.0.0.1 with a throwaway home, and get only
the variables written here (plus PATH), never the test process's own environment.
Outside CI a missing CLI skips its tests with the command that installs it; in CI it fails.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import NoReturn

import pytest

from tests.fakes.anthropic_server import FakeAnthropic

ROOT = Path(__file__).resolve().parents[2]
CODEX = ROOT / ".venv" / "node" / "codex" / "node_modules" / ".bin" / "codex"

# Variables of the test process that would change what the CLIs do or where they send it
# (IS_SANDBOX=1 lets root use bypassPermissions).
FOREIGN_PREFIXES = ("ANTHROPIC_", "CLAUDE", "OPENAI_", "CODEX_", "IS_SANDBOX")


def require_claude_sdk() -> None:
    """At the top of a test module that imports claude_agent_sdk: skip it, or fail in CI."""
    if importlib.util.find_spec("claude_agent_sdk") is None:
        _missing("claude-agent-sdk (the `claude` extra)", "make test")


def claude_cli() -> Path:
    """The `claude` binary bundled in the SDK wheel (skips or fails when it is missing)."""
    require_claude_sdk()
    import claude_agent_sdk

    path = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    if not os.access(path, os.X_OK):
        _missing(f"the bundled Claude Code CLI at {path}", "make test")
    return path


def codex_cli() -> Path:
    if not os.access(CODEX, os.X_OK):
        _missing(f"the Codex CLI at {CODEX}", "make test")
    return CODEX


def claude_env(base_url: str, home: Path) -> dict[str, str]:
    """Everything the Claude Code CLI needs to answer from a fake API and reach nothing else."""
    home.mkdir(parents=True, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),  # sessions, settings and shell snapshots go under $HOME/.claude
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "sk-ant-test-dummy",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }


def codex_env(base_url: str, home: Path, *, model: str = "gpt-5.5") -> dict[str, str]:
    """A CODEX_HOME whose config.toml sends every request to the fake, and its environment.

    Codex 0.171 reads no OPENAI_BASE_URL: a custom model provider carries the address.
    `features.plugins = false` stops its plugin sync (github.com, api.github.com) and
    `analytics.enabled = false` its analytics (chatgpt.com); with both, strace shows no
    connection but to the fake. `model` should be one Codex knows (gpt-5.5), or its first
    event is an error item saying the model's metadata was not found.
    """
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    (codex_home / "config.toml").write_text(
        f'model = "{model}"\n'
        'model_provider = "fake"\n'
        "[features]\nplugins = false\n"
        "[analytics]\nenabled = false\n"
        "[model_providers.fake]\n"
        'name = "fake"\n'
        f'base_url = "{base_url}"\n'
        'env_key = "FAKE_OPENAI_KEY"\n'
        'wire_api = "responses"\n'
    )
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "CODEX_HOME": str(codex_home),
        "FAKE_OPENAI_KEY": "sk-test-dummy",
    }


def without_foreign_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop those variables from this process: the SDK passes its whole environment on
    to the CLI, under the variables the test gives."""
    for name in list(os.environ):
        if name.startswith(FOREIGN_PREFIXES):
            monkeypatch.delenv(name)


def _missing(what: str, install: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{what} is not installed (CI must install it: {install})")
    pytest.skip(f"{what} is not installed: run `{install}`", allow_module_level=True)


def claude_config_text(fake: FakeAnthropic, workdir: Path, extra: str = "") -> str:
    """A deck whose default agent `coder` is Claude Code on `fake`, in `workdir`, with an
    admin, a viewer and an operator; `extra` is appended (more agents, sections)."""
    home = workdir.parent / "home"
    home.mkdir(exist_ok=True)
    return f"""
[deck]
default_agent = "coder"
[[users]]
id = "test:admin"
role = "admin"
[[users]]
id = "test:viewer"
role = "viewer"
[[users]]
id = "test:op"
role = "operator"
[[agents]]
name = "coder"
kind = "claude"
cwd = "{workdir}"
cli = "{claude_cli()}"
env = {{ ANTHROPIC_BASE_URL = "{fake.base_url}", ANTHROPIC_API_KEY = "sk-ant-dummy", HOME = "{home}" }}
{extra}
"""
