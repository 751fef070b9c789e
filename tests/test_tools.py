"""The tool registry: config tools with schemas, entry-point plugins, approvals, http, notify."""

from __future__ import annotations

import importlib
import json
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from roster.errors import ToolError
from roster.toolkit.plugins import load_plugins
from roster.toolkit.templated import CommandToolSpec, render
from roster.tools import ToolCallContext
from tests.fakes.openai_server import FakeOpenAI, call, say
from tests.support.config import make_config
from tests.support.decks import DeckFactory
from tests.support.llm import tool_results


def tools_config(server: FakeOpenAI, tools: str, declared: str = "", agent: str = "") -> str:
    return f"""
[deck]
default_agent = "bot"
[llm]
base_url = "{server.base_url}"
api_key = "env:TEST_OPENAI_KEY"
timeout = 5
max_retries = 0
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "bot"
kind = "llm"
model = "fake-model"
tools = {tools}
{agent}
{declared}
"""


def marker_tool(directory: Path, approval: str = "never") -> str:
    return f"""
[[tools]]
name = "make_marker"
description = "Create a marker file"
command = ["touch", "{directory}/{{word}}.marker"]
approval = "{approval}"
[tools.parameters]
type = "object"
required = ["word"]
additionalProperties = false
[tools.parameters.properties.word]
type = "string"
pattern = "^[a-z]+$"
"""


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")


async def test_config_tool_refuses_bad_arguments_before_running(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.script = [
        call("make_marker", word="../escape"),
        call("make_marker", word=5),
        call("make_marker", word="ok", extra="x"),
        call("make_marker", word="good"),
        say("done"),
    ]
    config = make_config(tools_config(fake_openai, '["make_marker"]', marker_tool(tmp_path)))
    async with deck_with_chat(config) as (_deck, chat):
        await chat.say("make markers")
        await chat.wait_for("bot: done")
    results = tool_results(fake_openai)
    assert results[0].startswith("error: argument 'word': '../escape' does not match")
    assert results[1] == "error: argument 'word': 5 is not of type 'string'"
    assert results[2].startswith("error: arguments: Additional properties are not allowed")
    assert results[3].startswith("exit code 0")
    assert sorted(p.name for p in tmp_path.glob("*.marker")) == ["good.marker"]
    schema = fake_openai.requests[0]["tools"][0]["function"]
    assert schema["name"] == "make_marker"
    assert schema["parameters"]["required"] == ["word"]


async def test_config_tool_waits_for_approval_with_the_exact_command(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI, tmp_path: Path
) -> None:
    fake_openai.script = [call("make_marker", word="gated"), say("made it")]
    declared = marker_tool(tmp_path, approval="always")
    config = make_config(tools_config(fake_openai, '["make_marker"]', declared))
    async with deck_with_chat(config) as (_deck, chat):
        await chat.say("make one")
        card = await chat.wait_for("Approval needed")
        assert f"touch {tmp_path}/gated.marker" in card.text
        assert not (tmp_path / "gated.marker").exists()
        approval_id = card.text.split("(")[1].split(")")[0]
        await chat.press(f"{approval_id}:approve")
        await chat.wait_for("bot: made it")
    assert (tmp_path / "gated.marker").exists()


def test_template_keeps_values_as_single_arguments_and_refuses_options() -> None:
    spec = CommandToolSpec.model_validate(
        {
            "name": "grep_log",
            "command": ["grep", "-n", "{pattern}", "{files}", "--label={label}"],
            "parameters": {
                "type": "object",
                "properties": {
                    "pattern": {"type": "string"},
                    "files": {"type": "array", "items": {"type": "string"}},
                    "label": {"type": "string"},
                },
            },
        }
    )
    argv = render(spec.command, {"pattern": "a b; rm -rf /", "files": ["x.log", "y.log"]})
    assert argv == ("grep", "-n", "a b; rm -rf /", "x.log", "y.log", "--label=")
    with pytest.raises(ToolError, match="starts with '-'"):
        render(spec.command, {"pattern": "--include=/etc/shadow"})
    with pytest.raises(ToolError, match="starts with '-'"):
        render(spec.command, {"pattern": "x", "files": ["a.log", "-r"]})
    opted_in = render(spec.command, {"pattern": "-w"}, accept_options=True)
    assert opted_in == ("grep", "-n", "-w", "--label=")
    after_dashes = render(["grep", "--", "{pattern}"], {"pattern": "-w"})
    assert after_dashes == ("grep", "--", "-w")


@pytest.mark.parametrize(
    ("tool", "problem"),
    [
        ({"command": ["echo", "{missing}"]}, "not in parameters.properties"),
        ({"command": ["echo", "{x.__class__}"], "parameters": {"type": "object"}}, "plain names"),
        ({"command": ["echo"], "parameters": {"type": "array"}}, '"type": "object"'),
        ({"command": ["echo"], "parameters": {"type": "object", "required": 3}}, "JSON Schema"),
    ],
)
def test_config_tool_specs_are_checked_at_load(tool: dict[str, object], problem: str) -> None:
    from bot.errors import ConfigError

    with pytest.raises(ConfigError, match="tools\\[0\\]") as caught:
        make_config("", tools=[{"name": "t", **tool}])
    assert problem in str(caught.value)


def test_config_tool_may_not_shadow_a_built_in() -> None:
    from bot.errors import ConfigError

    with pytest.raises(ConfigError, match="not built-in: notify"):
        make_config("", tools=[{"name": "notify", "command": ["echo"]}])


# --- entry points -----------------------------------------------------------------------

PLUGIN = """
from typing import Any, ClassVar
from collections.abc import Mapping

from roster.tools import Tool, ToolCallContext


class Shout(Tool):
    name = "shout"
    description = "Say it louder"
    parameters: ClassVar[Mapping[str, Any]] = {
        "type": "object",
        "properties": {"text": {"type": "string", "maxLength": 20}},
        "required": ["text"],
    }

    async def call(self, arguments: dict[str, Any], ctx: ToolCallContext) -> str:
        return arguments["text"].upper() + " (asked by " + ctx.agent + ")"
"""


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A real distribution on sys.path with `agentdeck.tools` entry points (one broken)."""
    package = f"deckplug_{tmp_path.name.replace('-', '_')}"
    site = tmp_path / "site"
    (site / package).mkdir(parents=True)
    (site / package / "__init__.py").write_text(PLUGIN)
    info = site / f"{package}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {package}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        textwrap.dedent(f"""
        [agentdeck.tools]
        shout = {package}:Shout
        broken = {package}:NoSuchThing
        """)
    )
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    yield package
    sys.modules.pop(package, None)


def test_entry_point_tools_are_found(installed_plugin: str) -> None:
    loaded = load_plugins()
    assert [tool.name for tool in loaded.tools] == ["shout"]
    assert len(loaded.problems) == 1
    assert "'broken'" in loaded.problems[0]


async def test_entry_point_tool_runs_with_its_schema_enforced(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI, installed_plugin: str
) -> None:
    fake_openai.script = [
        call("shout", text="x" * 30),
        call("shout", text="hello"),
        say("shouted"),
    ]
    async with deck_with_chat(make_config(tools_config(fake_openai, '["shout"]'))) as (_d, chat):
        await chat.say("shout hello")
        await chat.wait_for("bot: shouted")
    results = tool_results(fake_openai)
    assert results[0].startswith("error: argument 'text':")
    assert results[1] == "HELLO (asked by bot)"


# --- http_request and notify -------------------------------------------------------------


@pytest.fixture
async def web_server() -> AsyncIterator[str]:
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(f"{request.method} {request.path} {request.headers.get('X-Token', '')}")
        return web.Response(text=json.dumps({"ok": True, "seen": seen}))

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_http_get_runs_and_post_waits_for_approval(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI, web_server: str
) -> None:
    fake_openai.script = [
        call("http_request", url=f"{web_server}/health", headers={"X-Token": "t1"}),
        call("http_request", url="file:///etc/passwd"),
        call("http_request", url=f"{web_server}/deploy", method="POST", body="{}"),
        say("deployed"),
    ]
    # The web server is on loopback, which the agent must list to reach.
    agent = 'private_networks = ["127.0.0.1"]'
    config = make_config(tools_config(fake_openai, '["http_request"]', agent=agent))
    async with deck_with_chat(config) as (_deck, chat):
        await chat.say("check and deploy")
        card = await chat.wait_for("Approval needed")
        assert "method='POST'" in card.text
        approval_id = card.text.split("(")[1].split(")")[0]
        await chat.press(f"{approval_id}:approve")
        await chat.wait_for("bot: deployed")
    results = tool_results(fake_openai)
    assert results[0].startswith('HTTP 200\n{"ok": true, "seen": ["GET /health t1"]')
    assert results[1].startswith("error: argument 'url': 'file:///etc/passwd' does not match")
    assert "POST /deploy" in results[2]


async def test_notify_posts_to_another_chat(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [
        call("notify", chat="test:ops", text="disk is full on web-1"),
        call("notify", chat="nowhere:1", text="hello"),
        say("told ops"),
    ]
    listed = {"notify": {"chats": ["test:ops", "nowhere:1"]}}  # posted unasked
    config = make_config(tools_config(fake_openai, '["notify"]'), tool_policy=listed)
    async with deck_with_chat(config) as (_d, chat):
        await chat.say("tell ops")
        await chat.wait_for("bot: told ops")
        assert chat.texts("test:ops") == ["bot: disk is full on web-1"]
    assert tool_results(fake_openai) == [
        "posted to test:ops",
        "error: no transport runs for nowhere:1",
    ]


async def test_a_tool_outside_the_allowlist_is_not_offered(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [call("run_command", argv=["touch", "/tmp/x"]), say("no")]
    async with deck_with_chat(make_config(tools_config(fake_openai, '["notify"]'))) as (_d, chat):
        await chat.say("try it")
        await chat.wait_for("bot: no")
    assert [t["function"]["name"] for t in fake_openai.requests[0]["tools"]] == ["notify"]
    assert tool_results(fake_openai) == ["error: no tool named 'run_command'; available: notify"]


def test_tool_policy_overrides_a_built_in_default(fake_openai: FakeOpenAI) -> None:
    from bot.toolhost import toolbox_for

    config = make_config(
        tools_config(fake_openai, "[]"), tool_policy={"notify": {"approval": "always"}}
    )
    box = toolbox_for(config, notes=_NoNotes(), host=_NoHost())
    notify = box.select(["notify"])["notify"]
    assert notify.needs_approval({"chat": "test:x", "text": "hi"})
    assert "schedule_job" in box.names()


class _NoHost:
    """The tools are only built here, never called."""

    async def ask(self, agent: str, text: str, ctx: ToolCallContext) -> str:
        raise AssertionError("not called")

    async def notify(self, chat: str, text: str, *, agent: str) -> None:
        raise AssertionError("not called")

    async def schedule(self, *, agent: str, text: str, when: str, chat: str, user: str) -> str:
        raise AssertionError("not called")

    async def send_file(
        self, chat: str, thread: str | None, path: str, *, agent: str, key: str
    ) -> None:
        raise AssertionError("not called")

    async def listing(self, chat: str) -> str:
        raise AssertionError("not called")


class _NoNotes:
    async def add_note(self, chat_id: str, agent: str, text: str) -> None:
        return None

    async def notes(
        self, chat_id: str, agent: str, keyword: str = "", limit: int = 20
    ) -> list[str]:
        return []


async def test_schedule_job_asks_then_creates_and_list_jobs_shows_it(
    deck_with_chat: DeckFactory, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [
        call("schedule_job", agent="bot", input="daily report", when="every 30m"),
        call("list_jobs"),
        call("schedule_job", agent="bot", input="x", when="x"),
        say("scheduled"),
    ]
    config = make_config(tools_config(fake_openai, '["schedule_job", "list_jobs"]'))
    async with deck_with_chat(config) as (deck, chat):
        await chat.say("report every half hour")
        card = await chat.wait_for("Approval needed")
        assert "when='every 30m'" in card.text
        approval_id = card.text.split("(")[1].split(")")[0]
        await chat.press(f"{approval_id}:approve")
        await chat.wait_for("bot: scheduled")
        assert deck.scheduler is not None
        jobs, _ = await deck.scheduler.store.listed()
    assert [(job.agent, job.input, job.chat_id) for job in jobs] == [
        ("bot", "daily report", "test:chat")
    ]
    created, listed, refused = tool_results(fake_openai)
    assert created.startswith(f"job {jobs[0].id} created")
    assert listed.startswith(f"{jobs[0].id} ")
    assert "daily report" in listed
    assert refused == "error: argument 'when': 'x' is too short"  # refused before asking
