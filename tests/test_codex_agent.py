"""`kind = "codex"` through a chat: the real Codex CLI against the fake Responses API.

A two-turn thread resumed by id (the fake sees the history), progress lines from its
JSON events, the turn's own tokens (Codex counts the thread's), `/new`, the sandbox on
`/agents`, `approval = "always"` as a card before the turn, and the CLI's environment.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from roster.codex import CodexTurn, _unwrapped
from storage.runs import RunStore
from storage.sessions import AgentSessions
from tests.fakes.responses_server import FakeResponses, Reply, run, say, user_texts
from tests.support.agent_clis import codex_cli, codex_env, without_foreign_env
from tests.support.config import make_config
from tests.support.decks import DeckFactory

BOT_SECRET = "tg-bot-token-never-for-codex-5a4b3c"


@pytest.fixture
async def fake() -> AsyncIterator[FakeResponses]:
    server = await FakeResponses().start()
    yield server
    await server.stop()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    without_foreign_env(monkeypatch)
    monkeypatch.setenv("AGENTDECK_TEST_TOKEN", BOT_SECRET)
    path = tmp_path / "work"
    path.mkdir()
    return path


def config_text(fake: FakeResponses, workdir: Path, extra: str = "") -> str:
    env = codex_env(fake.base_url, workdir.parent / "home")
    table = ", ".join(f'{k} = "{v}"' for k, v in env.items() if k != "PATH")
    return f"""
[deck]
default_agent = "cx"
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "cx"
kind = "codex"
cwd = "{workdir}"
cli = "{codex_cli()}"
sandbox = "workspace-write"
env = {{ {table} }}
{extra}
"""


def test_events_become_lines_tokens_and_the_answer() -> None:
    turn = CodexTurn(lambda text: text)
    events = [
        b'{"type":"thread.started","thread_id":"t-1"}',
        b'{"type":"item.started","item":{"type":"command_execution","command":"/bin/bash -lc \'npm test\'"}}',
        b"a warning that is not JSON",
        b'{"type":"item.completed","item":{"type":"agent_message","text":"green"}}',
        b'{"type":"turn.completed","usage":{"input_tokens":12,"output_tokens":3}}',
    ]
    changed = [turn.read(line) for line in events]
    assert changed == [False, True, False, False, False]
    assert (turn.thread_id, turn.answer, turn.tokens_in, turn.tokens_out) == ("t-1", "green", 12, 3)
    assert turn.lines.text() == "Bash: npm test"
    assert turn.completed
    assert not turn.failed
    assert _unwrapped("/bin/bash -lc 'ls -la'") == "ls -la"


@pytest.mark.slow
async def test_a_thread_is_resumed_with_progress_and_tokens(
    deck_with_chat: DeckFactory, fake: FakeResponses, workdir: Path
) -> None:
    fake.script += [
        run("echo ran >> made.txt && env > env.txt"),
        Reply(text="Made it.", input_tokens=100, output_tokens=10),
        Reply(text="I made made.txt.", input_tokens=7, output_tokens=3),
    ]
    async with deck_with_chat(make_config(config_text(fake, workdir))) as (deck, chat):
        await chat.say("make the file")
        await chat.wait_for("cx: Made it.")
        await chat.say("what did you make?")
        await chat.wait_for("cx: I made made.txt.")
        await chat.say("/agents")
        await chat.wait_for("sandbox workspace-write")
        row = await AgentSessions(db=deck.db, clock=deck.clock).get("test:chat", "cx")
        assert row is not None
        assert row.turns == 2
        await deck.runner.flush()
        runs = await RunStore(deck.db).recent("cx")
        assert sorted((r.tokens_in, r.tokens_out) for r in runs)[0] == (7, 3)
    assert (workdir / "made.txt").read_text() == "ran\n"
    said = [t for t in user_texts(fake.requests[-1]) if not t.startswith("<environment_context>")]
    assert said[-2:] == ["make the file", "what did you make?"]  # a turn's new outbox: a context
    seen = (workdir / "env.txt").read_text()
    assert BOT_SECRET not in seen
    ours = [line for line in seen.splitlines() if "AGENTDECK_" in line]
    assert [line.split("=")[0] for line in ours] == ["AGENTDECK_OUTBOX_DIR"]  # and no other


@pytest.mark.slow
async def test_approval_always_puts_a_card_before_the_turn(
    deck_with_chat: DeckFactory, fake: FakeResponses, workdir: Path
) -> None:
    fake.script += [say("done")]
    text = config_text(fake, workdir, 'approval = "always"')
    async with deck_with_chat(make_config(text)) as (deck, chat):
        await chat.say("deploy it")
        card = await chat.wait_for("Approval needed")
        assert "deploy it" in card.text
        assert fake.requests == []
        approval = (await deck.approvals.pending())[0]
        await chat.press(f"{approval.id}:approve")
        await chat.wait_for("cx: done")


@pytest.mark.slow
async def test_new_starts_a_fresh_thread_and_stop_ends_a_turn(
    deck_with_chat: DeckFactory, fake: FakeResponses, workdir: Path
) -> None:
    fake.script += [say("noted"), say("too late", delay=8)]
    async with deck_with_chat(make_config(config_text(fake, workdir))) as (_deck, chat):
        await chat.say("remember the word tangerine")
        await chat.wait_for("cx: noted")
        await chat.say("/new cx")
        await chat.wait_for("New session with cx")
        await chat.say("which word?")
        async with asyncio.timeout(30):
            while len(fake.requests) < 2:
                await asyncio.sleep(0.05)
        await chat.say("/stop cx")
        await chat.wait_for("cx: stopped.")
    assert "tangerine" not in " ".join(user_texts(fake.requests[1]))


@pytest.mark.slow
async def test_a_file_codex_writes_to_the_outbox_reaches_the_chat(
    deck_with_chat: DeckFactory, fake: FakeResponses, workdir: Path
) -> None:
    """The outbox is outside the `workspace-write` sandbox's cwd: `--add-dir` makes it a
    workspace root (writable where the sandbox is enforced), in a first turn and in a
    resumed one (`exec … resume`)."""
    fake.script += [
        run('echo one > "$AGENTDECK_OUTBOX_DIR/one.txt"'),
        say("Wrote one."),
        run('echo two > "$AGENTDECK_OUTBOX_DIR/two.txt"'),
        say("Wrote two."),
    ]
    async with deck_with_chat(make_config(config_text(fake, workdir))) as (_deck, chat):
        await chat.say("write one")
        await chat.wait_for("cx: Wrote one.")
        sent = await chat.wait_for("cx: one.txt")
        assert Path(sent.message.files[0]).read_text() == "one\n"
        await chat.say("write two")
        sent = await chat.wait_for("cx: two.txt")
        assert Path(sent.message.files[0]).read_text() == "two\n"
        second_outbox = Path(sent.message.files[0]).parent
    assert f"<root>{second_outbox}</root>" in json.dumps(fake.requests[-1])
    assert "$AGENTDECK_OUTBOX_DIR" in json.dumps(fake.requests[0])  # its instructions name it
