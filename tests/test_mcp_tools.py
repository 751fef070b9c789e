"""MCP tools for llm agents, against real MCP servers we did not write.

`mcp-server-time` (PyPI, stdio) and `@modelcontextprotocol/server-everything` (npm,
stdio and streamable HTTP; `make mcp-servers`) serve the tools; the model is the fake
OpenAI server, the chat the fake Telegram server. What is checked: the model is offered
`<server>__<tool>` with the server's schema and reads the real result; a gated tool
waits for a card (Approve runs it, Deny is read as a refusal); a server killed mid-call
is a tool error and is started again; a hung one times out; a secret by reference
reaches the server's environment and nothing else of the bot's does, and its value is
in no log line, no stored row and nothing the model reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import open_deck
from bot.config import parse_config
from bot.deck import Deck
from tests.fakes.openai_server import FakeOpenAI, call, say
from tests.fakes.telegram_server import FakeTelegram
from tests.support.config import make_config
from tests.support.decks import audit_actions
from tests.support.telegram import ADMIN

ROOT = Path(__file__).resolve().parent.parent
TIME_SERVER = Path(sys.executable).parent / "mcp-server-time"
EVERYTHING = ROOT / ".venv" / "node" / "mcp" / "node_modules" / ".bin" / "mcp-server-everything"
SECRET_VALUE = "mcp-Token-Value-7f3a9c2e51"
BOT_ONLY = "bot-only-Value-0c4f1d2b7e"

# Outside CI a missing server skips its tests; in CI they run, and fail without it.
needs_everything = pytest.mark.skipif(
    (not EVERYTHING.exists() or shutil.which("node") is None) and os.environ.get("CI") != "true",
    reason="server-everything is installed by `make mcp-servers` (run by `make test`)",
)


def config_text(telegram: FakeTelegram, openai: FakeOpenAI, servers: str, agent: str = "") -> str:
    return f"""
[deck]
default_agent = "helper"
[telegram]
token = "env:TG_TOKEN"
base_url = "{telegram.base_url}"
[llm]
base_url = "{openai.base_url}"
api_key = "env:TEST_OPENAI_KEY"
timeout = 10
max_retries = 0
[[users]]
id = "telegram:{ADMIN}"
role = "admin"
[[agents]]
name = "helper"
kind = "llm"
model = "gpt-4o-mini"
{agent or 'mcp = ["time"]'}
{servers}
"""


TIME = f"""
[[mcp_servers]]
name = "time"
command = ["{TIME_SERVER}", "--local-timezone", "UTC"]
"""


@pytest.fixture
async def fake_telegram(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeTelegram]:
    server = await FakeTelegram().start()
    monkeypatch.setenv("TG_TOKEN", server.token)
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test-key-000000000000")
    yield server
    await server.stop()


@contextlib.asynccontextmanager
async def running(text: str) -> AsyncIterator[Deck]:
    async with asyncio.timeout(90), open_deck(make_config(text)) as (deck, _):
        yield deck


def said(fake: FakeTelegram, needle: str) -> bool:
    return any(needle in text for text in fake.sent_texts(ADMIN))


def tool_results(openai: FakeOpenAI) -> list[str]:
    """What the model read back from its tool calls, in order."""
    seen: list[str] = []
    for request in openai.requests:
        for message in request["messages"]:
            if message["role"] == "tool" and message["content"] not in seen:
                seen.append(message["content"])
    return seen


def press(fake: FakeTelegram, label: str) -> None:
    (mid,) = [mid for (_, mid), m in fake.messages.items() if "Approval needed" in m["text"]]
    keyboard = fake.messages[(ADMIN, mid)]["reply_markup"]["inline_keyboard"]
    (data,) = [str(b["callback_data"]) for row in keyboard for b in row if b["text"] == label]
    fake.press(data, message_id=mid, chat=ADMIN, user=ADMIN)


def children(marker: str) -> list[int]:
    """Pids of this process's children whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if ppid == os.getpid() and marker in cmdline:
                found.append(int(entry.name))
    return found


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


async def until(predicate: Any, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.05)


# --- the model uses a real server's tool ---------------------------------------------


async def test_the_model_calls_the_time_server_and_reads_its_real_answer(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    servers = TIME + '[tool_policy."time__get_current_time"]\napproval = "never"\n'
    fake_openai.script = [call("time__get_current_time", timezone="Asia/Tokyo"), say("it is late")]
    async with running(config_text(fake_telegram, fake_openai, servers)):
        fake_telegram.user_says("what time is it in Tokyo?", user=ADMIN)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "it is late"), timeout=30)
        assert len(children("mcp-server-time")) == 1
    assert children("mcp-server-time") == []  # stopped with the deck
    offered = {t["function"]["name"]: t["function"] for t in fake_openai.requests[0]["tools"]}
    assert "timezone" in offered["time__get_current_time"]["parameters"]["properties"]
    assert "time__convert_time" in offered
    (result,) = tool_results(fake_openai)
    answer = json.loads(result)
    assert answer["timezone"] == "Asia/Tokyo"
    assert answer["datetime"].endswith("+09:00")


async def test_mcp_tools_narrows_what_the_model_is_offered(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    agent = 'mcp = ["time"]\nmcp_tools = ["time__convert_time"]'
    fake_openai.script = [call("time__get_current_time", timezone="UTC"), say("ok")]
    async with running(config_text(fake_telegram, fake_openai, TIME, agent)):
        fake_telegram.user_says("time?", user=ADMIN)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "ok"), timeout=30)
    offered = [t["function"]["name"] for t in fake_openai.requests[0]["tools"]]
    assert offered == ["time__convert_time"]
    (result,) = tool_results(fake_openai)
    assert result.startswith("error: no tool named 'time__get_current_time'")


# --- policy: a card, Approve, Deny ---------------------------------------------------


async def test_a_gated_mcp_tool_runs_after_approve(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [call("time__get_current_time", timezone="Europe/Paris"), say("got it")]
    async with running(config_text(fake_telegram, fake_openai, TIME)) as deck:
        fake_telegram.user_says("time in Paris?", user=ADMIN)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "Approval needed"), timeout=30)
        (card,) = [t for t in fake_telegram.sent_texts(ADMIN) if "Approval needed" in t]
        assert "time__get_current_time(timezone='Europe/Paris')" in card
        assert "MCP tool get_current_time of server time (stdio)" in card
        assert "read-only" in card
        assert tool_results(fake_openai) == []  # nothing ran before the press
        press(fake_telegram, "Approve")
        await fake_telegram.wait_until(lambda: said(fake_telegram, "got it"), timeout=30)
        assert "approval.approved" in await audit_actions(deck)
    (result,) = tool_results(fake_openai)
    assert json.loads(result)["timezone"] == "Europe/Paris"


async def test_a_denied_mcp_tool_does_not_run_and_the_model_reads_why(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [call("time__get_current_time", timezone="UTC"), say("understood")]
    async with running(config_text(fake_telegram, fake_openai, TIME)):
        fake_telegram.user_says("time?", user=ADMIN)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "Approval needed"), timeout=30)
        press(fake_telegram, "Deny")
        await fake_telegram.wait_until(lambda: said(fake_telegram, "understood"), timeout=30)
    (result,) = tool_results(fake_openai)
    assert result.startswith(f"Denied by telegram:{ADMIN}; the action did not run.")


async def test_a_secret_the_model_puts_in_arguments_never_reaches_the_server(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    """A prompt-injected model names a vault secret: a card first (whatever the tool's
    policy), and even approved, a secret the agent does not list is not resolved."""
    servers = TIME + '[tool_policy."time__get_current_time"]\napproval = "never"\n'
    fake_openai.script = [call("time__get_current_time", timezone="secret:MCP_TOKEN"), say("tried")]
    async with running(config_text(fake_telegram, fake_openai, servers)) as deck:
        await deck.vault.set("MCP_TOKEN", SECRET_VALUE, by="test")
        fake_telegram.user_says("time?", user=ADMIN)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "Approval needed"), timeout=30)
        (card,) = [t for t in fake_telegram.sent_texts(ADMIN) if "Approval needed" in t]
        assert "timezone='secret:MCP_TOKEN'" in card
        assert SECRET_VALUE not in card
        press(fake_telegram, "Approve")
        await fake_telegram.wait_until(lambda: said(fake_telegram, "tried"), timeout=30)
    (result,) = tool_results(fake_openai)
    assert result.startswith("error:")
    assert "MCP_TOKEN" in result
    assert SECRET_VALUE not in result


@needs_everything
async def test_unless_read_only_asks_only_for_tools_the_server_does_not_mark_read_only(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    servers = f"""
[[mcp_servers]]
name = "everything"
command = ["{EVERYTHING}", "stdio"]
approval = "unless-read-only"
"""
    agent = 'mcp = ["everything"]'
    fake_openai.script = [
        call("everything__get-sum", a=2, b=3),  # read-only: runs unasked
        call("everything__toggle-simulated-logging"),  # not read-only: a card
        say("finished"),
    ]
    async with running(config_text(fake_telegram, fake_openai, servers, agent)):
        fake_telegram.user_says("add", user=ADMIN)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "Approval needed"), timeout=30)
        (card,) = [t for t in fake_telegram.sent_texts(ADMIN) if "Approval needed" in t]
        assert "everything__toggle-simulated-logging()" in card
        assert "may change things" in card
        assert any("5" in result for result in tool_results(fake_openai))
        press(fake_telegram, "Deny")
        await fake_telegram.wait_until(lambda: said(fake_telegram, "finished"), timeout=30)


@needs_everything
async def test_images_are_notes_structured_content_is_json_and_bad_input_is_a_tool_error(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    servers = f"""
[[mcp_servers]]
name = "everything"
command = ["{EVERYTHING}", "stdio"]
approval = "never"
"""
    agent = 'mcp = ["everything"]'
    fake_openai.script = [
        call("everything__get-tiny-image"),
        call("everything__get-structured-content", location="Chicago"),
        call("everything__get-structured-content", location="Atlantis"),
        say("seen"),
    ]
    async with running(config_text(fake_telegram, fake_openai, servers, agent)):
        fake_telegram.user_says("look", user=ADMIN)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "seen"), timeout=30)
    image, weather, atlantis = tool_results(fake_openai)
    assert "Here's the image you requested:" in image
    assert "[image: image/png," in image
    assert "not shown to the model]" in image
    assert json.loads(weather) == {
        "temperature": 36,
        "conditions": "Light rain / drizzle",
        "humidity": 82,
    }
    assert atlantis.startswith("error:")
    assert "location" in atlantis


# --- a server that dies, a server that hangs -----------------------------------------


@needs_everything
@pytest.mark.slow
async def test_a_server_killed_mid_call_is_a_tool_error_and_starts_again(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    servers = f"""
[[mcp_servers]]
name = "everything"
command = ["{EVERYTHING}", "stdio"]
approval = "never"
"""
    agent = 'mcp = ["everything"]'
    fake_openai.script = [
        call("everything__trigger-long-running-operation", duration=60, steps=60),
        call("everything__get-sum", a=20, b=22),
        say("recovered"),
    ]
    async with running(config_text(fake_telegram, fake_openai, servers, agent)) as deck:
        fake_telegram.user_says("work", user=ADMIN)
        await until(lambda: len(fake_openai.requests) == 1 and children("mcp-server-everything"))
        connection = deck.mcp.connection("everything")
        await until(lambda: connection.running)
        (first,) = children("mcp-server-everything")
        # The call is in flight: the session waits for its answer (the SDK's own table).
        await until(lambda: bool(getattr(connection._live_session(), "_response_streams", {})))
        os.killpg(first, signal.SIGKILL)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "recovered"), timeout=40)
        died, summed = tool_results(fake_openai)
        assert died.startswith("error: MCP server 'everything' is unavailable: stopped during")
        assert "42" in summed
        assert connection.starts == 2
        assert children("mcp-server-everything") not in ([], [first])


@needs_everything
async def test_a_hung_server_call_times_out_as_a_tool_error(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    servers = f"""
[[mcp_servers]]
name = "everything"
command = ["{EVERYTHING}", "stdio"]
approval = "never"
timeout = 1
"""
    agent = 'mcp = ["everything"]'
    fake_openai.script = [
        call("everything__trigger-long-running-operation", duration=30, steps=3),
        say("gave up"),
    ]
    async with running(config_text(fake_telegram, fake_openai, servers, agent)):
        fake_telegram.user_says("work", user=ADMIN)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "gave up"), timeout=30)
    (result,) = tool_results(fake_openai)
    assert result == "error: everything: no answer within 1 s"


async def test_a_server_that_cannot_start_is_a_clear_tool_error(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    servers = """
[[mcp_servers]]
name = "time"
command = ["/nonexistent/mcp-server"]
approval = "never"
start_timeout = 5
"""
    fake_openai.script = [call("time__get_current_time", timezone="UTC"), say("no tools")]
    async with running(config_text(fake_telegram, fake_openai, servers)):
        fake_telegram.user_says("time?", user=ADMIN)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "no tools"), timeout=30)
    assert "tools" not in fake_openai.requests[0]  # the server's tools are not offered
    (result,) = tool_results(fake_openai)
    assert result.startswith("error: no tool named 'time__get_current_time'")


# --- secrets -------------------------------------------------------------------------


@needs_everything
async def test_a_secret_reaches_the_servers_environment_and_nowhere_else(
    fake_telegram: FakeTelegram,
    fake_openai: FakeOpenAI,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    data_dir: Path,
) -> None:
    monkeypatch.setenv("BOT_ONLY_SETTING", BOT_ONLY)
    # An allowlisted name whose value is a credential the deck knows stays out too.
    monkeypatch.setenv("LOGNAME", SECRET_VALUE)
    servers = f"""
[[mcp_servers]]
name = "everything"
command = ["{EVERYTHING}", "stdio"]
env = {{ SERVICE_TOKEN = "secret:MCP_TOKEN" }}
approval = "never"
"""
    agent = 'mcp = ["everything"]'
    fake_openai.script = [call("everything__get-env"), say("read it")]
    caplog.set_level(logging.DEBUG)
    async with running(config_text(fake_telegram, fake_openai, servers, agent)) as deck:
        await deck.vault.set("MCP_TOKEN", SECRET_VALUE, by="test")
        fake_telegram.user_says("show env", user=ADMIN)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "read it"), timeout=30)
        (pid,) = children("mcp-server-everything")
        env = environ(pid)
        await deck.runner.flush()
    assert env["SERVICE_TOKEN"] == SECRET_VALUE
    assert [name for name, value in env.items() if SECRET_VALUE in value] == ["SERVICE_TOKEN"]
    assert env["PATH"] == os.environ["PATH"]  # the allowlist still reaches it
    assert BOT_ONLY not in env.values()
    assert not [name for name in env if name.startswith(("AGENTDECK_", "TG_", "TEST_OPENAI"))]
    (result,) = tool_results(fake_openai)
    assert "SERVICE_TOKEN" in result
    assert SECRET_VALUE not in result  # scrubbed for the model
    assert SECRET_VALUE not in caplog.text
    assert not [t for t in fake_telegram.sent_texts() if SECRET_VALUE in t]
    for path in data_dir.rglob("*"):
        if path.is_file():
            assert SECRET_VALUE.encode() not in path.read_bytes(), path


# --- streamable HTTP -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def everything_http() -> Iterator[str]:
    """server-everything over streamable HTTP on 127.0.0.1; its /mcp URL."""
    if not EVERYTHING.exists():
        pytest.skip("server-everything is installed by `make mcp-servers`")
    port = free_port()
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/"), "PORT": str(port)}
    process = subprocess.Popen(
        [str(EVERYTHING), "streamableHttp"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = 200
        while deadline:
            with socket.socket() as sock, contextlib.suppress(OSError):
                sock.connect(("127.0.0.1", port))
                break
            deadline -= 1
            subprocess.run(["sleep", "0.05"], check=True)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)


@needs_everything
async def test_a_streamable_http_server_serves_its_tools(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI, everything_http: str
) -> None:
    servers = f"""
[[mcp_servers]]
name = "web"
url = "{everything_http}"
headers = {{ Authorization = "secret:MCP_TOKEN" }}
approval = "never"
"""
    agent = 'mcp = ["web"]'
    fake_openai.script = [call("web__echo", message="over http"), say("heard")]
    async with running(config_text(fake_telegram, fake_openai, servers, agent)) as deck:
        await deck.vault.set("MCP_TOKEN", SECRET_VALUE, by="test")
        fake_telegram.user_says("echo", user=ADMIN)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "heard"), timeout=30)
    (result,) = tool_results(fake_openai)
    assert "over http" in result


# --- config --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "error"),
    [
        ('[[mcp_servers]]\nname = "x"\n', "either `command`"),
        ('[[mcp_servers]]\nname = "x"\ncommand = ["a"]\nurl = "http://h/"\n', "either"),
        (
            '[[mcp_servers]]\nname = "x"\ncommand = ["a"]\nenv = { K = "env:AGENTDECK_MASTER_KEY" }\n',
            "never passed to a child",
        ),
        ('[[mcp_servers]]\nname = "a__b"\ncommand = ["a"]\n', "name"),
    ],
)
def test_bad_server_entries_are_refused_with_the_key_path(extra: str, error: str) -> None:
    from bot.errors import ConfigError

    with pytest.raises(ConfigError, match="mcp_servers") as caught:
        parse_config(_toml(extra), source="t.toml")
    assert error in str(caught.value)


def test_an_agent_may_list_only_configured_servers_and_their_tools() -> None:
    from bot.errors import ConfigError

    agent = '[[agents]]\nname = "a"\nkind = "llm"\nmodel = "m"\nmcp = ["nope"]\n'
    with pytest.raises(ConfigError, match="not in \\[\\[mcp_servers\\]\\]"):
        parse_config(_toml(agent), source="t.toml")
    agent = '[[agents]]\nname = "a"\nkind = "llm"\nmodel = "m"\nmcp_tools = ["time__x"]\n'
    with pytest.raises(ConfigError, match="mcp_tools"):
        parse_config(_toml(agent), source="t.toml")


def _toml(text: str) -> dict[str, Any]:
    import tomllib

    return tomllib.loads(text)


# --- doctor and /agents --------------------------------------------------------------


async def test_doctor_starts_each_server_and_lists_its_tools(tmp_path: Path) -> None:
    from bot.doctor import CheckStatus, examine

    servers = TIME + '[[mcp_servers]]\nname = "broken"\ncommand = ["/nonexistent/server"]\n'
    config = parse_config(_toml(servers), source="t.toml")
    findings = {f.check: f for f in await examine(config)}
    time = findings["mcp time"]
    assert time.verdict is CheckStatus.OK
    assert "stdio: started; 2 tools: time__convert_time, time__get_current_time" in time.detail
    broken = findings["mcp broken"]
    assert broken.verdict is CheckStatus.FAIL
    assert "command not found" in broken.detail
    offline = findings["mcp servers"]  # `agentdeck check` finds it too, starting nothing
    assert offline.verdict is CheckStatus.FAIL
    assert offline.detail == "mcp server broken: command `/nonexistent/server` not found"
    assert children("mcp-server-time") == []  # stopped again


async def test_agents_shows_each_agents_tools_by_source(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    agent = 'tools = ["remember"]\nmcp = ["time"]'
    fake_openai.script = [say("hi")]
    async with running(config_text(fake_telegram, fake_openai, TIME, agent)) as deck:
        fake_telegram.user_says("/agents", user=ADMIN)
        await fake_telegram.wait_until(lambda: said(fake_telegram, "mcp time: listed once"))
        assert said(fake_telegram, "tools: remember")
        await deck.mcp.tools("time")
        fake_telegram.user_says("/agents", user=ADMIN)
        await fake_telegram.wait_until(
            lambda: said(fake_telegram, "mcp time: time__convert_time, time__get_current_time")
        )


@needs_everything
async def test_the_dashboard_confirms_tools_the_server_does_not_call_harmless() -> None:
    """`destructiveHint` decides whether Approve on the dashboard takes a second post."""
    from bot.runs.destructive import is_destructive
    from roster.agent import Action
    from roster.mcp.pool import McpPool
    from roster.mcp.spec import McpServerSpec
    from roster.refs import NoSecrets
    from roster.roster import Roster

    spec = McpServerSpec(name="everything", command=(str(EVERYTHING), "stdio"))
    pool = McpPool([spec], policies={}, secrets=NoSecrets(), redact=str)
    hints = (lambda action: pool.destructive(action.tool or ""),)

    def destructive(tool: str) -> bool:
        return is_destructive(Action("helper", "tool", tool=tool), Roster([]), hints)

    try:
        assert destructive("everything__get-env")  # not listed yet: confirm, to be safe
        await pool.tools("everything")
        assert not destructive("everything__get-env")  # readOnlyHint
        assert not destructive("everything__toggle-simulated-logging")  # destructiveHint false
        assert not destructive("remember")
    finally:
        await pool.close()


async def test_a_reload_stops_a_server_whose_entry_changed_and_keeps_the_others(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    from bot.reload import apply

    other = TIME.replace('name = "time"', 'name = "clock"')
    agent = 'mcp = ["time", "clock"]'
    async with running(config_text(fake_telegram, fake_openai, TIME + other, agent)) as deck:
        await deck.mcp.tools("time")
        await deck.mcp.tools("clock")
        await until(lambda: len(children("mcp-server-time")) == 2)
        kept = deck.mcp.connection("clock")
        changed = other.replace('"UTC"', '"Europe/Paris"')
        await apply(
            deck, make_config(config_text(fake_telegram, fake_openai, TIME + changed, agent))
        )
        await until(lambda: len(children("mcp-server-time")) == 1)  # the old clock stopped
        assert deck.mcp.connection("time").running
        assert deck.mcp.connection("clock") is not kept
        assert "--local-timezone Europe/Paris" in " ".join(deck.mcp.spec("clock").command)


@pytest.mark.slow
async def test_a_server_that_keeps_dying_is_restarted_with_a_growing_backoff() -> None:
    """Each quick death doubles the wait before the next start (a crash loop is slowed)."""
    from roster.mcp.connection import BACKOFF_START
    from roster.mcp.pool import McpPool
    from roster.mcp.spec import McpServerSpec
    from roster.refs import NoSecrets

    spec = McpServerSpec(name="time", command=(str(TIME_SERVER),))
    pool = McpPool([spec], policies={}, secrets=NoSecrets(), redact=str)
    connection = pool.connection("time")
    try:
        await pool.tools("time")
        for life in (1, 2):
            (pid,) = children("mcp-server-time")
            os.killpg(pid, signal.SIGKILL)
            await until(lambda life=life: connection.starts == life + 1 and connection.running)
        assert connection._delay == BACKOFF_START * 4  # 0.5 s, then 1 s waited; 2 s next
        result = await connection.call("get_current_time", {"timezone": "UTC"})
        assert not result.isError
    finally:
        await pool.close()
    assert children("mcp-server-time") == []
