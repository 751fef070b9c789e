"""The real Codex CLI (npm @openai/codex) against the fake Responses API, offline.

Groundwork for issue 17's `kind = "codex"`: `codex exec --json` and `codex exec resume <id>`
against tests/fakes/responses_server.py, pinning down the JSON events (thread.started,
item.started/completed with command_execution and agent_message items, turn.completed
with usage), resume, the sandbox, and what a kill leaves behind. Notes in
docs/claude-code-notes.md.
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

from roster.children import kill_group, start_child
from tests.fakes.responses_server import (
    FakeResponses,
    Reply,
    assistant_texts,
    call_outputs,
    run,
    say,
    user_texts,
)
from tests.support.agent_clis import codex_cli, codex_env, without_foreign_env

pytestmark = pytest.mark.slow

TURN_SECONDS = 60


@pytest.fixture
async def fake() -> AsyncIterator[FakeResponses]:
    server = await FakeResponses().start()
    yield server
    assert server.unhandled == [], "Codex asked for something the fake does not serve"
    await server.stop()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    without_foreign_env(monkeypatch)
    path = tmp_path / "work"
    path.mkdir()
    return path


async def codex_exec(
    fake: FakeResponses, workdir: Path, *args: str, sandbox: str = "read-only"
) -> list[dict[str, Any]]:
    """Run `codex exec --json ... args` to its end; its events, one per stdout line."""
    argv: list[str | Path] = [
        codex_cli(),
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--sandbox",
        sandbox,
        *args,
    ]
    process = await asyncio.create_subprocess_exec(
        *argv,
        cwd=workdir,
        env=codex_env(fake.base_url, workdir.parent / "home"),
        stdin=subprocess.DEVNULL,  # else exec waits to read more of the prompt from stdin
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    async with asyncio.timeout(TURN_SECONDS):
        out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return [json.loads(line) for line in out.decode().splitlines()]


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] + (f":{e['item']['type']}" if "item" in e else "") for e in events]


async def test_a_resumed_exec_continues_the_thread(fake: FakeResponses, workdir: Path) -> None:
    fake.script += [
        Reply(text="The build is green.", input_tokens=100, output_tokens=10),
        Reply(text="It was green.", input_tokens=7, output_tokens=3),
    ]
    first = await codex_exec(fake, workdir, "Is the build green?")
    assert kinds(first) == [
        "thread.started",
        "turn.started",
        "item.completed:agent_message",
        "turn.completed",
    ]
    thread_id = first[0]["thread_id"]
    assert first[2]["item"]["text"] == "The build is green."
    assert first[3]["usage"]["input_tokens"] == 100
    assert first[3]["usage"]["output_tokens"] == 10

    second = await codex_exec(fake, workdir, "resume", thread_id, "What did you say?")
    assert second[0] == {"type": "thread.started", "thread_id": thread_id}
    assert second[2]["item"]["text"] == "It was green."
    # turn.completed after a resume counts the whole thread, not this turn alone.
    assert second[3]["usage"]["input_tokens"] == 107
    assert second[3]["usage"]["output_tokens"] == 13

    assert user_texts(fake.requests[1])[-2:] == ["Is the build green?", "What did you say?"]
    assert assistant_texts(fake.requests[1]) == ["The build is green."]
    sessions = workdir.parent / "home" / ".codex" / "sessions"
    assert len(list(sessions.glob(f"*/*/*/rollout-*-{thread_id}.jsonl"))) == 1


async def test_a_new_exec_has_no_history(fake: FakeResponses, workdir: Path) -> None:
    fake.script += [say("first"), say("second")]
    first = await codex_exec(fake, workdir, "remember the word tangerine")
    second = await codex_exec(fake, workdir, "which word?")
    assert first[0]["thread_id"] != second[0]["thread_id"]
    assert "remember the word tangerine" not in user_texts(fake.requests[1])


async def test_a_command_runs_in_the_workspace_write_sandbox(
    fake: FakeResponses, workdir: Path
) -> None:
    fake.script += [run("echo ran >> made.txt && echo made"), say("Made it.")]
    events = await codex_exec(fake, workdir, "make the file", sandbox="workspace-write")
    assert kinds(events) == [
        "thread.started",
        "turn.started",
        "item.started:command_execution",
        "item.completed:command_execution",
        "item.completed:agent_message",
        "turn.completed",
    ]
    started, done = events[2]["item"], events[3]["item"]
    assert started["status"] == "in_progress"
    assert started["command"] == done["command"]
    assert "echo ran >> made.txt" in done["command"]
    assert (done["exit_code"], done["aggregated_output"]) == (0, "made\n")
    assert (workdir / "made.txt").read_text() == "ran\n"  # ran exactly once
    [output] = call_outputs(fake.requests[1])
    assert "Process exited with code 0" in output["output"]


async def test_the_read_only_sandbox_refuses_writes(fake: FakeResponses, workdir: Path) -> None:
    """A command the sandbox stops fails for the model, and --json shows no item for it."""
    fake.script += [run("touch made.txt"), say("Could not write.")]
    events = await codex_exec(fake, workdir, "make the file", sandbox="read-only")
    assert not (workdir / "made.txt").exists()
    [output] = call_outputs(fake.requests[1])
    assert "Read-only file system" in output["output"]
    assert "item.completed:agent_message" in kinds(events)
    assert "item.started:command_execution" not in kinds(events)


def processes_with(marker: str) -> list[int]:
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


async def test_stopping_codex_as_the_bot_does_ends_its_sandboxed_command(
    fake: FakeResponses, workdir: Path
) -> None:
    """Codex starts a sandboxed command in a session of its own (codex-linux-sandbox, then
    bwrap --die-with-parent), so a kill of Codex's group alone leaves it running when the
    kill comes before bwrap is set up — about one time in four right after the command
    appears. `kill_group` stops the whole tree: in none of the rounds does it live on."""
    for round_ in range(4):
        marker = str(workdir / f"late-{round_}.txt")
        fake.script.append(
            run(f"python3 -c 'import time; time.sleep(60)' {marker} && touch {marker}")
        )
        argv = [codex_cli(), "exec", "--json", "--skip-git-repo-check", "-s", "workspace-write"]
        process = await start_child(
            [*map(str, argv), "go"],
            env=codex_env(fake.base_url, workdir.parent / "home"),
            cwd=str(workdir),
        )
        try:
            async with asyncio.timeout(TURN_SECONDS):
                while not processes_with(marker):
                    await asyncio.sleep(0.01)
            await kill_group(process)
            assert processes_with(marker) == [], f"round {round_}: the command lives on"
        finally:
            for pid in processes_with(marker):
                os.kill(pid, signal.SIGKILL)
        assert not Path(marker).exists()
