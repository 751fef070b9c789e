"""Config: typed, validated, and every error names the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.config import load_config
from bot.errors import ConfigError

ROOT = Path(__file__).parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agentdeck.toml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return str(caught.value)


def test_the_example_config_is_valid() -> None:
    config = load_config(ROOT / "config.example.toml")
    assert [a.name for a in config.agents] == ["host", "shell", "assistant"]
    assert config.deck.default_agent == "host"


def test_unknown_key_is_named(tmp_path: Path) -> None:
    message = error_of(tmp_path, "[deck]\ndefualt_agent = 'host'\n")
    assert message.endswith(
        "agentdeck.toml: deck.defualt_agent: unknown key (check the spelling against config.example.toml)"
    )


def test_wrong_value_names_the_agent_key(tmp_path: Path) -> None:
    text = '[[agents]]\nname = "a"\nkind = "llm"\nmodel = "m"\nmax_turns = 0\n'
    assert "agents[0].max_turns: Input should be greater than or equal to 1" in error_of(
        tmp_path, text
    )


def test_unknown_kind(tmp_path: Path) -> None:
    text = '[[agents]]\nname = "a"\nkind = "robot"\n'
    assert "agents[0]: Input tag 'robot' found using 'kind' does not match" in error_of(
        tmp_path, text
    )


def test_binding_to_a_missing_agent(tmp_path: Path) -> None:
    text = '[[bindings]]\nchat = "telegram:1"\nagent = "ghost"\n'
    assert "bindings[0].agent names agent 'ghost', which is not in [[agents]]" in error_of(
        tmp_path, text
    )


def test_credentials_must_be_references(tmp_path: Path) -> None:
    text = '[telegram]\ntoken = "123:abc"\n'
    assert "telegram.token: String should match pattern" in error_of(tmp_path, text)


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    assert "not valid TOML" in error_of(tmp_path, "[deck\n")
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml")


def test_init_writes_a_starter_and_refuses_to_overwrite(tmp_path: Path) -> None:
    target = tmp_path / "mine.toml"
    runner = CliRunner()
    first = runner.invoke(main, ["init", str(target)])
    assert first.exit_code == 0
    assert target.read_text() == (ROOT / "config.example.toml").read_text()
    second = runner.invoke(main, ["init", str(target)])
    assert second.exit_code == 1
    assert "exists already" in second.output


def test_check_reports_ok_and_errors(tmp_path: Path) -> None:
    runner = CliRunner()
    ok = runner.invoke(main, ["check", "--config", str(ROOT / "config.example.toml")])
    assert ok.exit_code == 0
    assert "OK (3 agents" in ok.output
    bad = runner.invoke(
        main, ["check", "--config", str(write(tmp_path, "[deck]\nmemory_turns = -1\n"))]
    )
    assert bad.exit_code == 2
    assert "deck.memory_turns: Input should be greater than or equal to 0" in bad.output
