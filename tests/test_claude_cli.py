"""The real Claude Code CLI (bundled in claude-agent-sdk) against the fake Anthropic API, offline.

Groundwork for issue 17's `kind = "claude"`: these tests pin down what the CLI and the SDK
do that the agent will rely on (see docs/claude-code-notes.md) — print mode, resume by
session id across two clients, `can_use_tool` allow and deny, usage and cost, interrupt,
and the process tree a stop has to kill.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.anthropic_server import (
    FakeAnthropic,
    Reply,
    all_text,
    last_user_text,
    say,
    tool_results,
    use,
)
from tests.support.agent_clis import claude_cli, claude_env, require_claude_sdk, without_foreign_env

pytestmark = pytest.mark.slow  # each test starts the CLI (about a second) once or more

require_claude_sdk()
from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, ProcessError, ResultError  # noqa: E402
from claude_agent_sdk.types import (  # noqa: E402
    AssistantMessage,
    CanUseToolShadowedWarning,
    Message,
    PermissionResultAllow,
    PermissionResultDeny,
    ResultMessage,
    SystemMessage,
    TextBlock,
    ToolPermissionContext,
    ToolUseBlock,
    UserMessage,
)

TURN_SECONDS = 60  # generous: seven helpers share two cores


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    server = await FakeAnthropic().start()
    yield server
    assert server.unhandled == [], "the CLI asked for something the fake does not serve"
    await server.stop()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    without_foreign_env(monkeypatch)
    path = tmp_path / "work"
    path.mkdir()
    return path


def options(fake: FakeAnthropic, workdir: Path, **more: Any) -> ClaudeAgentOptions:
    env = claude_env(fake.base_url, workdir.parent / "home")
    return ClaudeAgentOptions(cli_path=claude_cli(), cwd=workdir, env=env, **more)


async def turn(client: ClaudeSDKClient, prompt: str) -> list[Message]:
    """Send one message and collect everything up to and including its ResultMessage."""
    async with asyncio.timeout(TURN_SECONDS):
        await client.query(prompt)
        return [message async for message in client.receive_response()]


def result_of(messages: list[Message]) -> ResultMessage:
    last = messages[-1]
    assert isinstance(last, ResultMessage), messages
    return last


async def test_print_mode_answers_from_the_fake(fake: FakeAnthropic, workdir: Path) -> None:
    fake.script.append(say("Hello from the fake API."))
    env = claude_env(fake.base_url, workdir.parent / "home")
    argv: list[str | Path] = [
        claude_cli(),
        "-p",
        "hi",
        "--output-format",
        "stream-json",
        "--verbose",
    ]
    process = await asyncio.create_subprocess_exec(
        *argv, cwd=workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    async with asyncio.timeout(TURN_SECONDS):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert [(line["type"], line.get("subtype")) for line in lines] == [
        ("system", "init"),
        ("assistant", None),
        ("result", "success"),
    ]
    init, assistant, result = lines
    assert assistant["message"]["content"] == [{"type": "text", "text": "Hello from the fake API."}]
    assert result["result"] == "Hello from the fake API."
    assert result["session_id"] == init["session_id"] == assistant["session_id"]
    assert len(fake.requests) == 1
    assert fake.requests[0]["stream"] is True
    assert last_user_text(fake.requests[0]) == "hi"


async def test_a_second_client_resumes_the_session(fake: FakeAnthropic, workdir: Path) -> None:
    fake.script += [say("The build is green."), say("It was green, as I said.")]
    async with ClaudeSDKClient(options(fake, workdir)) as client:
        first = await turn(client, "Is the build green?")
    session_id = result_of(first).session_id
    assert isinstance(first[0], SystemMessage)
    assert first[0].subtype == "init"
    assert first[0].data["session_id"] == session_id

    async with ClaudeSDKClient(options(fake, workdir, resume=session_id)) as client:
        second = await turn(client, "What did you say about the build?")

    assert result_of(second).session_id == session_id
    assert result_of(second).result == "It was green, as I said."
    history = all_text(fake.requests[1])
    assert "Is the build green?" in history
    assert "The build is green." in history
    assert last_user_text(fake.requests[1]) == "What did you say about the build?"
    home = workdir.parent / "home"
    assert len(list((home / ".claude" / "projects").glob(f"*/{session_id}.jsonl"))) == 1


async def test_a_fresh_client_without_resume_has_no_history(
    fake: FakeAnthropic, workdir: Path
) -> None:
    fake.script += [say("first"), say("second")]
    async with ClaudeSDKClient(options(fake, workdir)) as client:
        first = result_of(await turn(client, "remember the word tangerine"))
    async with ClaudeSDKClient(options(fake, workdir)) as client:
        second = result_of(await turn(client, "which word?"))
    assert second.session_id != first.session_id
    assert "tangerine" not in all_text(fake.requests[1])


async def test_resuming_an_unknown_session_fails_with_its_id(
    fake: FakeAnthropic, workdir: Path
) -> None:
    """What a lost session (its file gone with a changed HOME) looks like: start afresh."""
    unknown = "00000000-0000-4000-8000-000000000000"
    with pytest.raises(ResultError, match=f"No conversation found with session ID: {unknown}"):
        async with ClaudeSDKClient(options(fake, workdir, resume=unknown)) as client:
            await turn(client, "hello again")
    assert fake.requests == []


@pytest.mark.skipif(os.geteuid() != 0, reason="the CLI refuses this only to root")
async def test_bypass_permissions_is_refused_to_root(fake: FakeAnthropic, workdir: Path) -> None:
    lines: list[str] = []
    opts = options(fake, workdir, permission_mode="bypassPermissions", stderr=lines.append)
    with pytest.raises(ProcessError):
        async with ClaudeSDKClient(opts) as client:
            await turn(client, "anything")
    assert any("cannot be used with root/sudo privileges" in line for line in lines)
    assert fake.requests == []


class Decisions:
    """A `can_use_tool` callback that records each ask and answers as scripted."""

    def __init__(self, answer: PermissionResultAllow | PermissionResultDeny) -> None:
        self.answer = answer
        self.asked: list[tuple[str, dict[str, Any], ToolPermissionContext]] = []

    async def __call__(
        self, tool: str, tool_input: dict[str, Any], context: ToolPermissionContext
    ) -> PermissionResultAllow | PermissionResultDeny:
        self.asked.append((tool, tool_input, context))
        return self.answer


async def test_allowed_bash_runs_the_command(fake: FakeAnthropic, workdir: Path) -> None:
    decisions = Decisions(PermissionResultAllow())
    fake.script += [use("Bash", command="echo ran >> made.txt"), say("Made the file.")]
    opts = options(fake, workdir, permission_mode="default", can_use_tool=decisions)
    async with ClaudeSDKClient(opts) as client:
        messages = await turn(client, "make the file")

    [(tool, tool_input, context)] = decisions.asked
    assert tool == "Bash"
    assert tool_input["command"] == "echo ran >> made.txt"
    uses = [b for m in messages if isinstance(m, AssistantMessage) for b in m.content]
    [tool_use] = [b for b in uses if isinstance(b, ToolUseBlock)]
    assert context.tool_use_id == tool_use.id
    assert (workdir / "made.txt").read_text() == "ran\n"  # ran exactly once
    [outcome] = tool_results(fake.requests[1])
    assert outcome["tool_use_id"] == tool_use.id
    assert outcome["is_error"] is False
    assert result_of(messages).result == "Made the file."


async def test_denied_bash_sends_the_reason_to_the_model(
    fake: FakeAnthropic, workdir: Path
) -> None:
    reason = "Not on production; use the staging host."
    decisions = Decisions(PermissionResultDeny(message=reason))
    fake.script += [use("Bash", command="touch deployed.txt"), say("Switching to staging.")]
    opts = options(fake, workdir, permission_mode="default", can_use_tool=decisions)
    async with ClaudeSDKClient(opts) as client:
        messages = await turn(client, "deploy")

    assert [tool for tool, _, _ in decisions.asked] == ["Bash"]
    assert not (workdir / "deployed.txt").exists()
    [outcome] = tool_results(fake.requests[1])
    assert outcome["is_error"] is True
    assert outcome["content"] == reason
    result = result_of(messages)
    assert result.result == "Switching to staging."
    assert result.permission_denials is not None
    [denial] = result.permission_denials
    assert denial["tool_name"] == "Bash"
    assert denial["tool_input"] == {"command": "touch deployed.txt"}


async def test_allowed_tools_skip_the_callback(fake: FakeAnthropic, workdir: Path) -> None:
    decisions = Decisions(PermissionResultDeny(message="should not be asked"))
    fake.script += [use("Bash", command="echo ok > allowed.txt"), say("done")]
    opts = options(
        fake, workdir, permission_mode="default", can_use_tool=decisions, allowed_tools=["Bash"]
    )
    with pytest.warns(CanUseToolShadowedWarning, match="Bash"):
        async with ClaudeSDKClient(opts) as client:
            await turn(client, "go")
    assert decisions.asked == []
    assert (workdir / "allowed.txt").read_text() == "ok\n"


@pytest.mark.parametrize(
    "settings_file", ["work/.claude/settings.local.json", "home/.claude/settings.json"]
)
async def test_settings_files_allow_tools_past_the_callback_unless_sources_are_empty(
    fake: FakeAnthropic, workdir: Path, settings_file: str
) -> None:
    """An allow rule in a settings file (the cwd's own `.claude/settings.local.json`, or the
    user's) approves a tool before `can_use_tool` is asked, when the SDK's default
    `setting_sources=None` lets the CLI read them; `setting_sources=[]` closes that door."""
    settings = workdir.parent / settings_file
    settings.parent.mkdir(parents=True)
    settings.write_text(json.dumps({"permissions": {"allow": ["Bash"]}}))
    fake.script += [
        use("Bash", command="touch bypassed.txt"),
        say("ran it"),
        use("Bash", command="touch gated.txt"),
        say("was denied"),
    ]
    decisions = Decisions(PermissionResultDeny(message="denied by the card"))
    async with ClaudeSDKClient(
        options(fake, workdir, permission_mode="default", can_use_tool=decisions)
    ) as client:
        await turn(client, "default sources")
    assert decisions.asked == []
    assert (workdir / "bypassed.txt").exists()

    async with ClaudeSDKClient(
        options(
            fake, workdir, permission_mode="default", can_use_tool=decisions, setting_sources=[]
        )
    ) as client:
        await turn(client, "no sources")
    assert [tool for tool, _, _ in decisions.asked] == ["Bash"]
    assert not (workdir / "gated.txt").exists()


async def test_usage_is_per_turn_and_cost_is_the_session_total(
    fake: FakeAnthropic, workdir: Path
) -> None:
    fake.script += [
        Reply(text="one", input_tokens=1000, output_tokens=100),
        Reply(text="two", input_tokens=1000, output_tokens=100),
        Reply(text="three", input_tokens=1000, output_tokens=100),
    ]
    async with ClaudeSDKClient(options(fake, workdir)) as client:
        first = result_of(await turn(client, "one"))
        second = result_of(await turn(client, "two"))
    async with ClaudeSDKClient(options(fake, workdir, resume=first.session_id)) as client:
        third = result_of(await turn(client, "three"))

    for result in (first, second, third):
        assert result.usage is not None
        assert (result.usage["input_tokens"], result.usage["output_tokens"]) == (1000, 100)
        assert result.num_turns == 1
    assert first.total_cost_usd is not None
    assert first.total_cost_usd > 0
    # total_cost_usd adds up over the session, even across a resume in a new process:
    # a run's own cost is the difference from the session's previous total.
    assert second.total_cost_usd == pytest.approx(2 * first.total_cost_usd)
    assert third.total_cost_usd == pytest.approx(3 * first.total_cost_usd)


async def test_interrupt_while_the_model_streams(fake: FakeAnthropic, workdir: Path) -> None:
    fake.script += [say("too late", delay=60), say("after the interrupt")]
    async with ClaudeSDKClient(options(fake, workdir)) as client:
        await client.query("a long question")
        fake.received.clear()
        async with asyncio.timeout(TURN_SECONDS):
            await fake.received.wait()
            await client.interrupt()
            messages = [message async for message in client.receive_response()]
            while fake.aborted == 0:  # the CLI closed the HTTP stream, it did not just stop reading
                await asyncio.sleep(0.05)
        result = result_of(messages)
        assert result.subtype == "error_during_execution"
        assert result.is_error is True
        texts = [
            block.text
            for m in messages
            if isinstance(m, UserMessage) and isinstance(m.content, list)
            for block in m.content
            if isinstance(block, TextBlock)
        ]
        assert "[Request interrupted by user]" in texts
        assert not any(isinstance(m, AssistantMessage) for m in messages)

        after = result_of(await turn(client, "next"))
    assert after.result == "after the interrupt"
    assert after.session_id == result.session_id
    assert "[Request interrupted by user]" in all_text(fake.requests[-1])


def processes_with(marker: str) -> list[int]:
    """Pids whose command line holds `marker` (a path unique to the test)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry.name))
    return found


async def waited_for(marker: str) -> list[int]:
    async with asyncio.timeout(TURN_SECONDS):
        while not (pids := processes_with(marker)):
            await asyncio.sleep(0.05)
    return pids


def long_command(workdir: Path) -> str:
    """A command that sleeps, then writes a file: its process shows it is still running."""
    late = workdir / "late.txt"
    return f"python3 -c 'import time; time.sleep(60)' {late} && touch {late}"


async def test_interrupt_kills_a_running_bash_command(fake: FakeAnthropic, workdir: Path) -> None:
    marker = str(workdir / "late.txt")
    fake.script += [use("Bash", command=long_command(workdir)), say("unused")]
    opts = options(fake, workdir, allowed_tools=["Bash"])
    async with ClaudeSDKClient(opts) as client:
        await client.query("run the long thing")
        await waited_for(marker)
        await client.interrupt()
        async with asyncio.timeout(TURN_SECONDS):
            messages = [message async for message in client.receive_response()]
            while processes_with(marker):
                await asyncio.sleep(0.05)
    assert result_of(messages).subtype == "error_during_execution"
    assert not (workdir / "late.txt").exists()


def bash_turn_argv() -> list[str | Path]:
    """`claude -p` for one turn that may use Bash, as the two stop tests run it."""
    return [claude_cli(), "-p", "go", "--allowedTools", "Bash", "--output-format", "json"]


async def test_sigkill_of_the_cli_orphans_its_bash_command(
    fake: FakeAnthropic, workdir: Path
) -> None:
    """A Bash tool runs in a session of its own: killing the CLI's process group misses it.

    SIGTERM lets the CLI kill its commands; SIGKILL leaves them running, so a stop must
    kill the process groups of the CLI's children too (here, by the marker's pids).
    """
    marker = str(workdir / "late.txt")
    fake.script.append(use("Bash", command=long_command(workdir)))
    env = claude_env(fake.base_url, workdir.parent / "home")
    argv = bash_turn_argv()
    cli = await asyncio.create_subprocess_exec(
        *argv,
        cwd=workdir,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    commands = await waited_for(marker)
    try:
        assert all(os.getsid(pid) != os.getsid(cli.pid) for pid in commands)
        os.killpg(cli.pid, signal.SIGKILL)
        async with asyncio.timeout(TURN_SECONDS):
            await cli.wait()
        await asyncio.sleep(0.3)
        assert processes_with(marker), "the command died with the CLI's group"
    finally:
        for pid in processes_with(marker):
            os.killpg(os.getpgid(pid), signal.SIGKILL)


async def test_sigterm_lets_the_cli_kill_its_bash_command(
    fake: FakeAnthropic, workdir: Path
) -> None:
    marker = str(workdir / "late.txt")
    fake.script.append(use("Bash", command=long_command(workdir)))
    env = claude_env(fake.base_url, workdir.parent / "home")
    argv = bash_turn_argv()
    cli = await asyncio.create_subprocess_exec(
        *argv, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    await waited_for(marker)
    try:
        cli.send_signal(signal.SIGTERM)
        async with asyncio.timeout(TURN_SECONDS):
            assert await cli.wait() == 128 + signal.SIGTERM
            while processes_with(marker):
                await asyncio.sleep(0.05)
    finally:
        for pid in processes_with(marker):
            os.killpg(os.getpgid(pid), signal.SIGKILL)
