"""`agentdeck doctor` against the fake Telegram, Slack and OpenAI servers on 127.0.0.1:
every check says OK, or what is wrong and what to do; exit 1 when anything failed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.doctor import CheckStatus, examine, failed
from storage.migrations import HEAD_REVISION
from storage.secrets import new_key
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_server import APP_TOKEN, BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.fakes.telegram_server import BOT_USERNAME, FakeTelegram
from tests.support.bot_process import agentdeck
from tests.support.config import make_config
from tests.support.data import store_secrets

LLM_KEY = "sk-test-doctor"


def config_text(telegram: FakeTelegram, slack: FakeSlack, openai: FakeOpenAI) -> str:
    return f"""
[deck]
default_agent = "echo"
[[users]]
id = "telegram:1001"
role = "admin"
[llm]
base_url = "{openai.base_url}"
api_key = "env:DOCTOR_LLM_KEY"
max_retries = 3
[telegram]
token = "env:DOCTOR_TG_TOKEN"
base_url = "{telegram.base_url}"
[slack]
bot_token = "secret:slack_bot"
app_token = "env:DOCTOR_SLACK_APP"
signing_secret = "env:DOCTOR_SLACK_SIGNING"
base_url = "{slack.api_url}"
[[agents]]
name = "echo"
kind = "echo"
[[agents]]
name = "writer"
kind = "llm"
model = "gpt-4o-mini"
"""


@pytest.fixture
async def servers(
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[tuple[FakeTelegram, FakeSlack, FakeOpenAI]]:
    telegram = await FakeTelegram().start()
    slack = await FakeSlack().start()
    openai = await FakeOpenAI().start()
    openai.api_key = LLM_KEY
    monkeypatch.setenv("DOCTOR_TG_TOKEN", telegram.token)
    monkeypatch.setenv("DOCTOR_SLACK_APP", APP_TOKEN)
    monkeypatch.setenv("DOCTOR_SLACK_SIGNING", SIGNING_SECRET)
    monkeypatch.setenv("DOCTOR_LLM_KEY", LLM_KEY)
    monkeypatch.setenv("AGENTDECK_MASTER_KEY", new_key())
    yield telegram, slack, openai
    await openai.stop()
    await slack.stop()
    await telegram.stop()


def by_check(findings: list) -> dict[str, tuple[CheckStatus, str]]:  # type: ignore[type-arg]
    return {f.check: (f.verdict, f.detail) for f in findings}


async def test_everything_configured_and_working_is_ok(servers, data_dir: Path) -> None:
    telegram, slack, openai = servers
    await store_secrets(data_dir, slack_bot=BOT_TOKEN)
    findings = await examine(make_config(config_text(telegram, slack, openai)))
    seen = by_check(findings)
    assert [f.check for f in findings] == [
        "config",
        "agents",
        "users",
        "database",
        "secrets",
        "telegram",
        "slack",
        "llm",
    ]
    assert all(f.verdict is CheckStatus.OK for f in findings), [f.line() for f in findings]
    assert seen["config"][1] == "test.toml: 2 agents, 1 users, valid"
    assert seen["database"][1].endswith(f"schema {HEAD_REVISION} (current)")
    assert seen["secrets"][1] == "master key from AGENTDECK_MASTER_KEY; 1 stored secret(s) decrypt"
    assert seen["telegram"][1] == f"@{BOT_USERNAME} (polling)"
    assert seen["slack"][1] == "@deck in team T0TEAM (socket)"
    assert "gpt-4o-mini among them" in seen["llm"][1]
    assert not failed(findings)
    # The checks asked the real APIs, and started nothing.
    assert [c.method for c in telegram.calls] == ["getMe"]
    assert [c.method for c in slack.calls] == ["auth.test", "apps.connections.open"]


async def test_bad_credentials_are_named_with_what_to_do(
    servers, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    telegram, slack, openai = servers
    await store_secrets(data_dir, slack_bot="xoxb-revoked-token")
    monkeypatch.setenv("DOCTOR_TG_TOKEN", "999:wrong")
    monkeypatch.setenv("DOCTOR_LLM_KEY", "sk-wrong")
    findings = await examine(make_config(config_text(telegram, slack, openai)))
    seen = by_check(findings)
    assert seen["telegram"] == (
        CheckStatus.FAIL,
        "Telegram rejected the bot token (401 Unauthorized): check [telegram] token",
    )
    assert seen["slack"] == (
        CheckStatus.FAIL,
        "Slack refused slack.bot_token (invalid_auth): check it (it starts with xoxb-)",
    )
    assert seen["llm"][0] is CheckStatus.FAIL
    assert seen["llm"][1].startswith("The model API answered 401")
    assert seen["database"][0] is seen["secrets"][0] is CheckStatus.OK
    assert failed(findings)
    lines = "\n".join(f.line() for f in findings)
    assert "xoxb-revoked-token" not in lines  # a refused value is never echoed back


async def test_missing_references_and_unreachable_apis(
    servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    telegram, slack, openai = servers
    monkeypatch.delenv("DOCTOR_TG_TOKEN")
    closed = 9  # discard: nothing listens there (a free port could be taken meanwhile)
    text = config_text(telegram, slack, openai).replace(
        openai.base_url, f"http://127.0.0.1:{closed}/v1"
    )
    findings = await examine(make_config(text))
    seen = by_check(findings)
    assert seen["telegram"] == (
        CheckStatus.FAIL,
        "[telegram] token: The environment variable DOCTOR_TG_TOKEN is not set "
        "(used as 'env:DOCTOR_TG_TOKEN').",
    )
    assert seen["slack"][0] is CheckStatus.FAIL
    assert "slack.bot_token" in seen["slack"][1]
    assert "secret" in seen["slack"][1]  # no secret of that name is stored
    assert seen["llm"] == (
        CheckStatus.FAIL,
        "The model API cannot be reached; check [llm] base_url.",
    )
    assert seen["database"] == (
        CheckStatus.OK,
        seen["database"][1],
    )
    assert "not created yet" in seen["database"][1]


async def test_wrong_master_key_fails_the_secrets_check(
    servers, data_dir: Path, monkeypatch
) -> None:
    telegram, slack, openai = servers
    await store_secrets(data_dir, slack_bot=BOT_TOKEN)
    monkeypatch.setenv("AGENTDECK_MASTER_KEY", new_key())
    findings = await examine(make_config(config_text(telegram, slack, openai)))
    verdict, detail = by_check(findings)["secrets"]
    assert verdict is CheckStatus.FAIL
    assert detail.startswith(
        "The master key from AGENTDECK_MASTER_KEY does not decrypt the 1 stored"
    )
    # Without the vault, the Slack token cannot be resolved either: said, not crashed.
    assert by_check(findings)["slack"][0] is CheckStatus.FAIL


async def test_an_unreachable_database_and_a_model_the_endpoint_lacks(
    servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    telegram, slack, openai = servers
    text = config_text(telegram, slack, openai).replace(
        "[deck]\n", '[deck]\ndatabase_url = "postgresql://deck@127.0.0.1:9/deck"\n'
    )
    text = text.replace('model = "gpt-4o-mini"', 'model = "gpt-9-turbo"')
    findings = await examine(make_config(text))
    seen = by_check(findings)
    assert seen["database"][0] is CheckStatus.FAIL
    assert "(check [deck] database_url)" in seen["database"][1]
    assert seen["secrets"][0] is CheckStatus.OK  # the key itself is fine; stored secrets unknown
    assert seen["llm"][0] is CheckStatus.WARN
    assert "does not list gpt-9-turbo" in seen["llm"][1]


@pytest.mark.slow
async def test_the_command_prints_one_line_per_check_and_exits_1(
    servers, data_dir: Path, tmp_path: Path
) -> None:
    telegram, slack, openai = servers
    path = tmp_path / "deck.toml"
    path.write_text(config_text(telegram, slack, openai))
    code, out, err = await agentdeck("doctor", "--config", str(path))
    lines = out.splitlines()
    assert code == 1, err
    assert lines[0] == f"ok    config: {path}: 2 agents, 1 users, valid"
    assert lines[5] == f"ok    telegram: @{BOT_USERNAME} (polling)"
    assert lines[6].startswith("FAIL  slack: slack.bot_token: ")  # not stored yet
    assert len(lines) == 8
    assert "Traceback" not in out + err


@pytest.mark.slow
async def test_an_invalid_config_is_one_fail_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[deck]\nmemory_turns = -1\n")
    code, out, _ = await agentdeck("doctor", "--config", str(path))
    assert code == 1
    assert out.splitlines() == [
        f"FAIL  config: {path}: deck.memory_turns: Input should be greater than or equal to 0"
    ]
