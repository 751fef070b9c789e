"""Every child process the bot starts: what environment it gets, and how it is stopped.

The attack: the bot's own environment holds its credentials (the master key, the
Telegram token, the model's API key; with the systemd unit's `EnvironmentFile` this is
the normal case). A child must get only an allowlist plus what its agent declares,
whether it is a command agent, its preview, `run_command` or a `[[tools]]` template.
And a tool's command that starts children of its own must not leave them running
after a timeout or `/stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import sys
from pathlib import Path

import pytest

from bot.errors import ConfigError
from roster.children import KILL_GRACE_SECONDS, kill_group, start_child
from roster.tools import RunCommandTool, ToolCallContext
from storage.secrets import new_key
from tests.fakes.openai_server import FakeOpenAI, call, say
from tests.support.bot_process import run_console
from tests.support.config import make_config
from tests.support.decks import DeckFactory
from tests.support.process_groups import group_alive, group_members, read_pid
from tests.support.waiting import eventually

# What a child may inherit from the bot's environment (`roster.children`).
INHERITED = {"PATH", "HOME", "LANG", "TZ", "TERM", "USER", "LOGNAME", "SHELL", "TMPDIR"}
TELEGRAM_TOKEN = "123456:AAH-bot-token-of-the-deck"
OPENAI_KEY = "sk-the-decks-own-model-key-7f3a"
PYTHON = sys.executable  # not a shim that adds variables of its own


def bots_credentials(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Put the deck's credentials into its environment, as an EnvironmentFile would."""
    values = {
        "AGENTDECK_MASTER_KEY": new_key(),
        "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
        "OPENAI_API_KEY": OPENAI_KEY,
        "AGENTDECK_SOMETHING_ELSE": "internal-setting-value",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


def names_in(env_output: str) -> set[str]:
    """The variable names `env` printed (one NAME=value per line)."""
    return {line.split("=", 1)[0] for line in env_output.splitlines() if "=" in line}


def leaks(text: str, credentials: dict[str, str]) -> list[str]:
    """The credentials whose name (as `NAME=`) or value `text` shows."""
    return [name for name, value in credentials.items() if f"{name}=" in text or value in text]


def allowed_name(name: str) -> bool:
    # AGENTDECK_OUTBOX_DIR: the folder the bot gives a run for files it sends back (#19).
    return name in INHERITED or name.startswith("LC_") or name == "AGENTDECK_OUTBOX_DIR"


@pytest.mark.slow
async def test_an_approved_env_on_the_console_shows_none_of_the_bots_credentials(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = bots_credentials(monkeypatch)
    code, out, err = await run_console(["/ask shell env", "1"], data_dir)
    assert code == 0, err
    assert "Approved by console:local" in out
    assert "PATH=" in out  # the command ran and printed its environment
    assert leaks(out + err, credentials) == [], "console"
    with sqlite3.connect(data_dir / "agentdeck.db") as db:
        outputs = [row[0] for row in db.execute("SELECT output FROM runs")]
    assert any("PATH=" in output for output in outputs)
    assert leaks("\n".join(outputs), credentials) == [], "runs.output"


READ_ONLY = """
[deck]
default_agent = "watch"
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "watch"
kind = "command"
command = ["{python}", "-c", "import os, sys, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)", "{pidfile}"]
"""


async def test_a_running_read_only_agents_child_holds_no_credential(
    deck_with_chat: DeckFactory, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    credentials = bots_credentials(monkeypatch)
    pidfile = tmp_path / "pid"
    config = make_config(READ_ONLY.replace("{pidfile}", str(pidfile)).replace("{python}", PYTHON))
    async with deck_with_chat(config) as (_deck, chat):
        await chat.say("/ask watch now")
        pid = await read_pid(pidfile)
        environ = Path(f"/proc/{pid}/environ").read_bytes().decode()
        await chat.say("/stop watch")
        await chat.wait_for("stopped")
    names = {entry.split("=", 1)[0] for entry in environ.split("\0") if entry}
    assert "PATH" in names
    assert leaks(environ.replace("\0", "\n"), credentials) == [], "/proc/<pid>/environ"
    assert all(allowed_name(name) for name in names), sorted(names)


def env_tools_config(server: FakeOpenAI) -> str:
    return f"""
[deck]
default_agent = "bot"
[llm]
base_url = "{server.base_url}"
max_retries = 0
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "bot"
kind = "llm"
model = "m"
tools = ["show_env", "run_command"]
[[tools]]
name = "show_env"
description = "Print the environment"
command = ["env"]
approval = "never"
"""


async def test_templated_tools_and_run_command_get_no_credential(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = bots_credentials(monkeypatch)  # OPENAI_API_KEY is also the model's key here
    fake_openai.script = [call("show_env"), call("run_command", argv=["env"]), say("seen")]
    async with deck_with_chat(make_config(env_tools_config(fake_openai))) as (_deck, chat):
        await chat.say("show me")
        card = await chat.wait_for("Approval needed")
        await chat.press(card.message.buttons[0].value)
        await chat.wait_for("bot: seen")
    results = [m["content"] for m in fake_openai.requests[-1]["messages"] if m["role"] == "tool"]
    assert len(results) == 2
    for where, result in zip(("show_env", "run_command"), results, strict=True):
        assert "PATH=" in result, result
        assert leaks(result, credentials) == [], where
        assert all(allowed_name(name) for name in names_in(result)), where


DECLARED = """
[deck]
default_agent = "deploy"
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "deploy"
kind = "command"
command = ["env"]
env = { DEPLOY_TOKEN = "secret:DEPLOY_TOKEN", MODE = "fast" }
secrets = ["DEPLOY_TOKEN", "OTHER"]
preview = ["env"]
stdin = true
approval = "always"
"""


async def test_an_agent_gets_exactly_the_secret_its_env_names(
    deck_with_chat: DeckFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    credentials = bots_credentials(monkeypatch)
    async with deck_with_chat(make_config(DECLARED)) as (deck, chat):
        await deck.vault.set("DEPLOY_TOKEN", "deploy-token-value-1", by="test")
        await deck.vault.set("OTHER", "other-secret-value-2", by="test")
        await chat.say("/ask deploy now")
        card = await chat.wait_for("Approval needed")
        preview = card.text
        await chat.press(card.message.buttons[0].value)
        result = await chat.wait_for("exit 0")
    for where, text in (("preview", preview), ("run", result.text)):
        assert leaks(text, credentials) == [], where
        assert "other-secret-value-2" not in text
    names = names_in(result.text)
    assert {"DEPLOY_TOKEN", "MODE"} <= names
    assert all(allowed_name(name) for name in names - {"DEPLOY_TOKEN", "MODE"}), sorted(names)
    assert "DEPLOY_TOKEN=[redacted:DEPLOY_TOKEN]" in result.text
    assert "MODE=fast" in result.text
    assert "PATH=" in preview  # the preview ran, with the allowlist only


async def gone(pgid: int) -> bool:
    """Whether the group is gone within the kill's grace (TERM, then KILL)."""
    with contextlib.suppress(TimeoutError):
        await eventually(lambda: not group_alive(pgid), timeout=KILL_GRACE_SECONDS + 3)
    return not group_alive(pgid)


SPAWNING = "echo $$ > {pidfile}; sleep 300 & sleep 300"


def spawning_tools_config(server: FakeOpenAI, pidfile: Path, timeout: float) -> str:
    script = SPAWNING.format(pidfile=pidfile)
    return f"""
[deck]
default_agent = "bot"
[llm]
base_url = "{server.base_url}"
api_key = "env:TEST_OPENAI_KEY"
max_retries = 0
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "bot"
kind = "llm"
model = "m"
tools = ["spawner", "run_command"]
[[tools]]
name = "spawner"
description = "Starts a child of its own and waits"
command = ["/bin/sh", "-c", "{script}"]
timeout = {timeout}
approval = "never"
[tool_policy.run_command]
approval = "never"
"""


async def test_a_templated_tools_timeout_kills_its_whole_process_group(
    deck_with_chat: DeckFactory,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")
    pidfile = tmp_path / "pid"
    fake_openai.script = [call("spawner"), say("over")]
    config = make_config(spawning_tools_config(fake_openai, pidfile, timeout=1))
    async with deck_with_chat(config) as (_deck, chat):
        await chat.say("start it")
        pgid = await read_pid(pidfile)
        await chat.wait_for("bot: over")
        result = [m for m in fake_openai.requests[-1]["messages"] if m["role"] == "tool"]
        assert "timed out after 1 s" in result[0]["content"]
        assert await gone(pgid), f"still running: {group_members(pgid)}"


async def test_run_commands_timeout_kills_its_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    argv = ["/bin/sh", "-c", SPAWNING.format(pidfile=pidfile)]
    context = ToolCallContext(run_id="r", chat_id="test:chat", agent="bot")
    result = await RunCommandTool(timeout=1).call({"argv": argv}, context)
    assert result == "timed out after 1 s"
    pgid = int(pidfile.read_text())
    assert await gone(pgid), f"still running: {group_members(pgid)}"


@pytest.mark.parametrize("tool", ["spawner", "run_command"])
async def test_stop_kills_a_tools_whole_process_group(
    deck_with_chat: DeckFactory,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    tool: str,
) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")
    pidfile = tmp_path / "pid"
    argv = ["/bin/sh", "-c", SPAWNING.format(pidfile=pidfile)]
    steps = {"spawner": call("spawner"), "run_command": call("run_command", argv=argv)}
    fake_openai.script = [steps[tool], say("never")]
    config = make_config(spawning_tools_config(fake_openai, pidfile, timeout=300))
    async with deck_with_chat(config) as (_deck, chat):
        await chat.say("start it")
        pgid = await read_pid(pidfile)
        assert len(group_members(pgid)) >= 2  # the shell and its background child
        await chat.say("/stop bot")
        await chat.wait_for("bot: stopped")
        assert await gone(pgid), f"still running: {group_members(pgid)}"


@pytest.mark.parametrize(
    "env", ['{ AGENTDECK_MASTER_KEY = "x" }', '{ KEY = "env:AGENTDECK_MASTER_KEY" }']
)
def test_an_agent_cannot_declare_the_bots_own_variables(env: str) -> None:
    text = READ_ONLY.replace("[[agents]]", f"[[agents]]\nenv = {env}")
    with pytest.raises(ConfigError, match=r"AGENTDECK_\* variables are the bot's own"):
        make_config(text)


@pytest.mark.slow
async def test_a_cancel_while_the_child_starts_still_stops_its_group(tmp_path: Path) -> None:
    """/stop can land between the fork and the moment the run holds the process."""
    started: list[int] = []
    for attempt in range(20):
        pidfile = tmp_path / f"pid{attempt}"
        argv = ["/bin/sh", "-c", SPAWNING.format(pidfile=pidfile)]
        starting = asyncio.create_task(start_child(argv, env={"PATH": os.environ["PATH"]}))
        for _ in range(attempt % 4):  # cancel at different points of the start
            await asyncio.sleep(0)
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            process = await starting
            await kill_group(process)  # started before the cancel arrived: ours to stop
        with contextlib.suppress(FileNotFoundError, ValueError):
            started.append(await read_pid_soon(pidfile))
    survivors = [pgid for pgid in started if not await gone(pgid)]
    assert survivors == []


async def read_pid_soon(pidfile: Path) -> int:
    """The pid the shell wrote, if it got to run at all (a cancelled fork never does)."""
    for _ in range(20):
        if pidfile.exists() and pidfile.read_text().strip():
            return int(pidfile.read_text())
        await asyncio.sleep(0.01)
    raise FileNotFoundError(pidfile)
