"""`agentdeck check` and `doctor` catch what would break the first message, and chat
names a missing program or a model URL without /v1 in words, not as an exception name.

The CLI is the installed `agentdeck` (`python -m bot`), run as a user would."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from bot.preflight import agents_finding
from tests.fakes.openai_server import FakeOpenAI
from tests.support.bot_process import agentdeck
from tests.support.config import make_config
from tests.support.decks import DeckFactory

TELEGRAM = """
[telegram]
token = "env:PREFLIGHT_TG_TOKEN"
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "deck.toml"
    path.write_text(text)
    return str(path)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port something else listens on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


@pytest.fixture
async def openai(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeOpenAI]:
    server = await FakeOpenAI().start()
    server.api_key = "sk-preflight"
    monkeypatch.setenv("PREFLIGHT_LLM_KEY", "sk-preflight")
    yield server
    await server.stop()


@pytest.mark.slow
async def test_a_missing_program_or_directory_fails_check(data_dir: Path, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""
[deck]
default_agent = "ok"
[[agents]]
name = "ok"
kind = "command"
command = ["echo", "{{input}}"]
cwd = "{tmp_path}"
[[agents]]
name = "cx"
kind = "command"
command = ["claude-x", "{{input}}"]
[[agents]]
name = "lost"
kind = "command"
command = ["echo"]
cwd = "{tmp_path}/gone"
[[agents]]
name = "abs"
kind = "command"
actions = {{ go = ["{tmp_path}/bin/tool"] }}
[[agents]]
name = "own_path"
kind = "command"
command = ["echo"]
env = {{ PATH = "{tmp_path}" }}
""",
    )
    code, out, err = await agentdeck("check", "--config", path)
    assert code == 1, out + err
    agents_line = next(line for line in out.splitlines() if line.startswith("FAIL  agents:"))
    assert "agent cx: command `claude-x` not found on PATH" in agents_line
    assert f"agent lost: cwd {tmp_path}/gone does not exist" in agents_line
    assert f"agent abs: command `{tmp_path}/bin/tool` is not an executable" in agents_line
    assert "agent own_path: command `echo` not found on PATH" in agents_line  # its own PATH
    assert "agent ok" not in agents_line
    assert "Traceback" not in out + err
    code, out, _ = await agentdeck("doctor", "--config", path)
    assert code == 1
    assert "FAIL  agents: agent cx: command `claude-x` not found on PATH" in out


@pytest.mark.slow
async def test_ports_in_use_and_a_chat_deck_without_users_are_warned(
    data_dir: Path, tmp_path: Path, busy_port: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PREFLIGHT_TG_TOKEN", "1:x")
    path = write(
        tmp_path,
        f"""
[dashboard]
enabled = true
port = {busy_port}
[metrics]
enabled = true
port = {busy_port}
{TELEGRAM}
""",
    )
    code, out, err = await agentdeck("check", "--config", path)
    assert code == 0, out + err
    lines = out.splitlines()
    assert any(
        line.startswith(
            f"warn  dashboard port: 127.0.0.1:{busy_port} is in use: change [dashboard]"
        )
        for line in lines
    ), out
    assert any(
        line.startswith(f"warn  metrics port: 127.0.0.1:{busy_port} is in use") for line in lines
    )
    assert any(
        line.startswith("warn  users: no [[users]]: nobody may use the Telegram bot")
        for line in lines
    )


@pytest.mark.slow
async def test_base_url_shapes_are_named(data_dir: Path, tmp_path: Path) -> None:
    for section, wrong, said in [
        ('[telegram]\ntoken = "env:T"\n', "https://api.telegram.org", "Telegram base_url must"),
        ("[slack]\n", "https://slack.com/api", "Slack base_url must"),
        ("[llm]\n", "api.openai.com/v1", "llm.base_url"),
    ]:
        path = write(tmp_path, f'{section}base_url = "{wrong}"\n')
        code, out, err = await agentdeck("check", "--config", path)
        assert code == 2, (section, out, err)
        assert said in err, err
        assert "end in /" in err or section == "[llm]\n"


@pytest.mark.slow
async def test_a_model_url_without_v1_is_named_by_doctor_and_in_chat(
    data_dir: Path, tmp_path: Path, openai: FakeOpenAI, deck_with_chat: DeckFactory
) -> None:
    without_v1 = openai.base_url.removesuffix("/v1")
    text = f"""
[deck]
default_agent = "writer"
[[users]]
id = "test:admin"
role = "admin"
[llm]
base_url = "{without_v1}"
api_key = "env:PREFLIGHT_LLM_KEY"
max_retries = 0
[[agents]]
name = "writer"
kind = "llm"
model = "gpt-4o-mini"
"""
    code, out, _ = await agentdeck("doctor", "--config", write(tmp_path, text))
    assert code == 1
    assert (
        f"FAIL  llm: The model API answered 404 at {without_v1}/models: does [llm] base_url "
        "need /v1 at its end?"
    ) in out.splitlines()
    async with deck_with_chat(make_config(text)) as (_deck, chat):
        await chat.say("/ask writer hello")
        said = await chat.wait_for("404")
        assert f"404 at {without_v1}/chat/completions: does [llm] base_url need /v1" in said.text
    assert openai.requests == []  # nothing reached the real route


@pytest.mark.slow
async def test_the_embedded_default_without_a_key_is_a_warning(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code, out, err = await agentdeck("doctor")
    assert code == 0, out + err
    assert any(line.startswith("warn  llm: no API key") for line in out.splitlines())


async def test_chat_names_a_missing_program_and_directory(
    data_dir: Path, tmp_path: Path, deck_with_chat: DeckFactory
) -> None:
    config = make_config(
        f"""
[deck]
default_agent = "cx"
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "cx"
kind = "command"
command = ["claude-x", "{{input}}"]
[[agents]]
name = "lost"
kind = "command"
command = ["echo", "{{input}}"]
cwd = "{tmp_path}/gone"
"""
    )
    async with deck_with_chat(config) as (_deck, chat):
        await chat.say("/ask cx hi")
        assert (await chat.wait_for("cx:")).text == "cx: command `claude-x` not found on PATH"
        await chat.say("/ask lost hi")
        said = await chat.wait_for("lost:")
        assert (
            said.text
            == f"lost: the working directory `{tmp_path}/gone` does not exist (check the agent's cwd)"
        )
        assert "FileNotFoundError" not in " ".join(p.text for p in chat.posted)


def test_coding_agents_need_their_cwd_and_cli(tmp_path: Path) -> None:
    config = make_config(
        f"""
[[agents]]
name = "coder"
kind = "codex"
cwd = "{tmp_path / "missing"}"
cli = "no-such-codex-cli"
[[agents]]
name = "claude"
kind = "claude"
cwd = "{tmp_path}"
cli = "{tmp_path / "claude"}"
"""
    )
    finding = agents_finding(config)
    assert "agent coder: cwd" in finding.detail
    assert "CLI `no-such-codex-cli` not found" in finding.detail
    assert f"CLI `{tmp_path / 'claude'}` not found" in finding.detail


REPORTS_ELSEWHERE = """
[deck]
admin_chat = "console:local"
default_agent = "echo"
[[agents]]
name = "echo"
kind = "echo"
[[jobs]]
name = "nightly"
agent = "echo"
input = "hi"
every = "1h"
report_to = "telegram:42"
[[jobs]]
name = "hourly"
agent = "echo"
input = "hi"
every = "1h"
[[triggers]]
name = "alerts"
path = "/hooks/alerts"
verify = "bearer"
secret = "env:PREFLIGHT_HOOK_TOKEN"
agent = "echo"
input = "alert {title}"
report = "slack:C123"
[webhooks]
port = 0
"""


@pytest.mark.slow
async def test_a_report_chat_no_transport_serves_fails_check_and_start(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trigger's or job's runs would report where nothing posts: said before anything
    runs, by `check` and by `run`, each place named (the second job reports to the
    console's admin chat and is fine)."""
    monkeypatch.setenv("PREFLIGHT_HOOK_TOKEN", "a-long-enough-token")
    path = write(tmp_path, REPORTS_ELSEWHERE)
    code, out, err = await agentdeck("check", "--config", path)
    assert code == 1, out + err
    reports = next(line for line in out.splitlines() if line.startswith("FAIL  reports:"))
    assert (
        "jobs[0].report_to: no transport 'telegram' runs here to post to telegram:42 "
        "(running: console)" in reports
    )
    assert "triggers[0].report: no transport 'slack' runs here to post to slack:C123" in reports
    assert "jobs[1]" not in reports
    code, out, err = await agentdeck("run", "--config", path, data_dir=data_dir, stdin="/help\n")
    assert code != 0
    assert "triggers[0].report: no transport 'slack' runs here" in err
    assert "jobs[0].report_to: no transport 'telegram' runs here" in err
    assert "agentdeck started" not in out
    assert "Traceback" not in out + err


def test_report_chats_on_the_transports_that_run_pass() -> None:
    config = make_config(REPORTS_ELSEWHERE.replace("telegram:42", "console:ops"))
    assert config.transport_names() == ["console"]
    assert config.unserved_reports(["console", "slack"]) == []
    assert [problem.partition(":")[0] for problem in config.unserved_reports(["console"])] == [
        "triggers[0].report"
    ]
