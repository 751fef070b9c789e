"""`kind = "claude"` through a chat: the real Claude Code CLI against the fake Anthropic API.

Sessions per chat resumed by id (the fake sees the history), `/new`, a restart between
turns, permission prompts as approval cards (Approve runs the command; Deny with reason
reaches the CLI and nothing runs), progress lines, cost, `/stop`, a budget cap, and the
attacks: the CLI's environment holds no bot secret; a lower role cannot approve.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.app import open_app, open_deck
from bot.deck import Deck
from bot.runs.approvals import SESSION_INTERRUPTED
from storage.runs import RunStore
from storage.sessions import AgentSessions
from tests.fakes.anthropic_server import (
    FakeAnthropic,
    all_text,
    last_user_text,
    say,
    tool_results,
    use,
)
from tests.fakes.chat import ChatRecorder
from tests.fakes.telegram_server import FakeTelegram
from tests.support.agent_clis import claude_cli, claude_config_text, without_foreign_env
from tests.support.config import make_config
from tests.support.decks import DeckFactory, audit_actions
from tests.support.metrics import scrape

pytestmark = pytest.mark.slow  # each turn starts the real CLI

BOT_SECRET = "tg-bot-token-never-for-children-9f8e7d"


@pytest.fixture
async def fake() -> AsyncIterator[FakeAnthropic]:
    server = await FakeAnthropic().start()
    yield server
    assert server.unhandled == []
    await server.stop()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    without_foreign_env(monkeypatch)
    monkeypatch.setenv("AGENTDECK_TEST_TOKEN", BOT_SECRET)  # the bot's own: never the CLI's
    path = tmp_path / "work"
    path.mkdir()
    return path


async def sessions_of(deck: Deck) -> AgentSessions:
    return deck.agent_sessions


async def test_a_second_message_resumes_the_session(
    deck_with_chat: DeckFactory, fake: FakeAnthropic, workdir: Path
) -> None:
    fake.script += [say("The build is green."), say("It was green, as I said.")]
    async with deck_with_chat(make_config(claude_config_text(fake, workdir))) as (deck, chat):
        await chat.say("Is the build green?")
        await chat.wait_for("coder: The build is green.")
        await chat.say("What did you say about the build?")
        await chat.wait_for("coder: It was green, as I said.")
        row = await (await sessions_of(deck)).get("test:chat", "coder")
        assert row is not None
        assert row.turns == 2
        assert row.cost > 0
    history = all_text(fake.requests[1])
    assert "Is the build green?" in history
    assert "The build is green." in history
    assert last_user_text(fake.requests[1]) == "What did you say about the build?"


async def test_new_starts_a_session_without_history(
    deck_with_chat: DeckFactory, fake: FakeAnthropic, workdir: Path
) -> None:
    fake.script += [say("noted"), say("fresh")]
    async with deck_with_chat(make_config(claude_config_text(fake, workdir))) as (_deck, chat):
        await chat.say("remember the word tangerine")
        await chat.wait_for("coder: noted")
        await chat.say("/new")
        await chat.wait_for("New session")
        await chat.say("which word?")
        await chat.wait_for("coder: fresh")
    assert "tangerine" not in all_text(fake.requests[1])


async def test_a_restart_between_turns_resumes(fake: FakeAnthropic, workdir: Path) -> None:
    fake.script += [say("first answer"), say("second answer")]
    config = make_config(claude_config_text(fake, workdir))
    for text, answer in (("first question", "first answer"), ("second question", "second answer")):
        chat = ChatRecorder()
        async with asyncio.timeout(90), open_deck(config, transports=[chat]):
            await chat.say(text)
            await chat.wait_for(f"coder: {answer}")
    assert "first question" in all_text(fake.requests[1])


async def test_a_bash_prompt_becomes_a_card_and_approve_runs_it(
    deck_with_chat: DeckFactory, fake: FakeAnthropic, workdir: Path
) -> None:
    fake.script += [
        use("Bash", command="touch made.txt", description="make a file"),
        say("Made it."),
    ]
    async with deck_with_chat(make_config(claude_config_text(fake, workdir))) as (deck, chat):
        await chat.say("make a file")
        card = await chat.wait_for("Approval needed")
        assert "Bash: touch made.txt" in card.text
        assert not (workdir / "made.txt").exists()
        approval = (await deck.approvals.pending())[0]
        await chat.press(f"{approval.id}:approve", user="test:viewer")  # a lower role
        assert (await deck.approvals.pending())[0].id == approval.id
        await chat.press(f"{approval.id}:approve")
        await chat.wait_for("coder: Made it.")
        assert (workdir / "made.txt").exists()
        assert "approval.refused" in await audit_actions(deck)
    results = tool_results(fake.requests[1])
    assert results[0]["is_error"] is False


async def test_deny_with_reason_reaches_the_cli_and_nothing_runs(
    deck_with_chat: DeckFactory, fake: FakeAnthropic, workdir: Path
) -> None:
    fake.script += [use("Bash", command="rm -rf build && touch gone.txt"), say("I will not.")]
    async with deck_with_chat(make_config(claude_config_text(fake, workdir))) as (deck, chat):
        await chat.say("clean up")
        await chat.wait_for("Approval needed")
        approval = (await deck.approvals.pending())[0]
        await chat.press(f"{approval.id}:reason")
        await chat.wait_for("reason")
        await chat.say("use make clean instead")
        await chat.wait_for("coder: I will not.")
    assert not (workdir / "gone.txt").exists()
    results = tool_results(fake.requests[1])
    assert results[0]["is_error"] is True
    assert "use make clean instead" in str(results[0]["content"])


async def test_progress_lines_and_the_cli_environment(
    deck_with_chat: DeckFactory, fake: FakeAnthropic, workdir: Path
) -> None:
    command = "cat /proc/$PPID/environ | tr '\\0' '\\n' > env.txt; env >> env.txt"
    fake.script += [use("Bash", command=command), say("done")]
    extra = 'allowed_tools = ["Bash(cat:*)"]\nrun_timeout = 120'
    async with deck_with_chat(make_config(claude_config_text(fake, workdir, extra))) as (
        deck,
        chat,
    ):
        await chat.say("look around")
        card = await chat.wait_for("Approval needed")
        approval = (await deck.approvals.pending())[0]
        await chat.press(f"{approval.id}:approve")
        await chat.wait_for("coder: done")
        assert "Bash: cat /proc" in card.text
    seen = (workdir / "env.txt").read_text()
    assert BOT_SECRET not in seen
    ours = {line.split("=")[0] for line in seen.splitlines() if "AGENTDECK_" in line}
    assert ours == {"AGENTDECK_OUTBOX_DIR"}  # the run's folder for files back, and no other
    assert "ANTHROPIC_BASE_URL" in seen  # its own env table did reach it


async def test_stop_mid_turn_ends_the_cli(
    deck_with_chat: DeckFactory, fake: FakeAnthropic, workdir: Path
) -> None:
    fake.script += [say("too late", delay=30)]
    async with deck_with_chat(make_config(claude_config_text(fake, workdir))) as (_deck, chat):
        await chat.say("think for a long time")
        async with asyncio.timeout(30):
            while not fake.requests:
                await asyncio.sleep(0.05)
        await chat.say("/stop coder")
        await chat.wait_for("coder: stopped.")
        async with asyncio.timeout(30):
            while not fake.aborted:
                await asyncio.sleep(0.05)
    assert not _claude_children()


def _claude_children() -> list[int]:
    """Processes of this test's that run the bundled CLI still."""
    cli = str(claude_cli())
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            if cmdline and cmdline[0].decode() == cli and os.getppid() != int(entry.name):
                stat = (entry / "stat").read_text()
                if f" {os.getpid()} " in stat.split(")")[1][:40]:
                    found.append(int(entry.name))
        except OSError:
            continue
    return found


async def test_cost_counts_and_a_budget_cap_asks_to_extend(
    fake: FakeAnthropic, workdir: Path
) -> None:
    fake.script += [say("one"), say("two")]
    extra = '[[budgets]]\nagent = "coder"\ndaily_tokens = 10\n[metrics]\nenabled = true\nport = 0'
    chat = ChatRecorder()
    config = make_config(claude_config_text(fake, workdir, extra))
    async with asyncio.timeout(90), open_app(config, transports=[chat]) as app:
        deck, metrics = app.deck, app.metrics
        await chat.say("first")
        await chat.wait_for("coder: one")  # its tokens pass the cap of 10
        await chat.say("/sessions")
        listed = await chat.wait_for("1 turn(s)")
        assert "coder" in listed.text
        await chat.say("second")
        card = await chat.wait_for("extend_budget")
        assert len(fake.requests) == 1  # the second turn waits for the card
        approval = (await deck.approvals.pending())[0]
        await chat.press(f"{approval.id}:approve")
        await chat.wait_for("coder: two")
        assert "tokens=10" in card.text
        await chat.say("/cost")
        await chat.wait_for("coder")
        await deck.runner.flush()
        runs = await RunStore(deck.db).recent("coder")
        assert metrics is not None
        _kind, samples = await scrape(f"http://127.0.0.1:{metrics.port}/metrics")
    assert samples['agentdeck_cost_usd_total{agent="coder"}'] == pytest.approx(
        sum(run.cost for run in runs)
    )
    assert samples['agentdeck_tokens_total{agent="coder",direction="out"}'] > 0
    assert len(runs) == 2
    assert all(run.cost > 0 and run.tokens_in > 0 for run in runs)


async def test_a_stop_while_a_card_waits_ends_the_card_and_the_next_message_resumes(
    fake: FakeAnthropic, workdir: Path
) -> None:
    fake.script += [use("Bash", command="touch late.txt"), say("resumed fine")]
    config = make_config(claude_config_text(fake, workdir))
    chat = ChatRecorder()
    async with asyncio.timeout(90), open_deck(config, transports=[chat]) as (deck, _):
        await chat.say("make it")
        await chat.wait_for("Approval needed")
        [approval] = await deck.approvals.pending()
    # The deck stopped with the card open: the card says so and takes no press.
    stopped = await chat.wait_for("the next message resumes the session")
    assert "Expired" in stopped.text
    chat = ChatRecorder()
    async with asyncio.timeout(90), open_deck(config, transports=[chat]) as (deck, _):
        assert await deck.approvals.pending() == []
        await chat.press(f"{approval.id}:approve")
        await chat.say("go on")
        await chat.wait_for("coder: resumed fine")
    assert not (workdir / "late.txt").exists()
    assert "make it" in all_text(fake.requests[-1])


TG_ADMIN, TG_OPERATOR = 1001, 1002


async def test_through_telegram_a_card_progress_and_a_resumed_session(
    fake: FakeAnthropic, workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same through the fake Bot API: the card's buttons, an operator's press refused
    (only the admin approves), progress edited into one message, the session resumed."""
    telegram = await FakeTelegram().start()
    monkeypatch.setenv("TG_TOKEN", telegram.token)
    fake.script += [
        use("Bash", command="sleep 1.5 && touch tg.txt", description="wait, then make a file"),
        say("Made it on Telegram."),
        say("Still the same session."),
    ]
    text = claude_config_text(fake, workdir).replace(
        '[[users]]\nid = "test:admin"',
        f'[telegram]\ntoken = "env:TG_TOKEN"\nbase_url = "{telegram.base_url}"\n'
        f'[[users]]\nid = "telegram:{TG_ADMIN}"\nrole = "admin"\n'
        f'[[users]]\nid = "telegram:{TG_OPERATOR}"\nrole = "operator"\n'
        '[[users]]\nid = "test:admin"',
    )
    try:
        async with asyncio.timeout(90), open_deck(make_config(text)):
            telegram.user_says("make a file", user=TG_ADMIN)
            await telegram.wait_until(lambda: _tg_ids(telegram, "Approval needed"), timeout=30)
            card_id = _tg_ids(telegram, "Approval needed")[0]
            card = telegram.messages[(TG_ADMIN, card_id)]
            assert "Bash: sleep 1.5 &amp;&amp; touch tg.txt" in card["text"] or (
                "Bash: sleep 1.5 && touch tg.txt" in card["text"]
            )
            buttons = {
                b["text"]: b["callback_data"]
                for row in card["reply_markup"]["inline_keyboard"]
                for b in row
            }
            approve = buttons["Approve"]
            telegram.press(approve, message_id=card_id, chat=TG_ADMIN, user=TG_OPERATOR)
            answers = await telegram.wait_for("answerCallbackQuery")
            assert "not one of the approvers" in answers[0].params["text"]
            assert not (workdir / "tg.txt").exists()
            telegram.press(approve, message_id=card_id, chat=TG_ADMIN, user=TG_ADMIN)
            await telegram.wait_until(
                lambda: any("Made it on Telegram." in t for t in telegram.sent_texts(TG_ADMIN)),
                timeout=30,
            )
            assert (workdir / "tg.txt").exists()
            shown = [
                c.params["text"]
                for c in telegram.calls_to("sendMessage") + telegram.calls_to("editMessageText")
            ]
            assert any("working" in t and "Bash: sleep 1.5" in t for t in shown)
            result = telegram.calls_to("editMessageText")[-1].params["text"]
            assert "Made it on Telegram." in result  # the answer replaced the progress
            telegram.user_says("and now?", user=TG_ADMIN)
            await telegram.wait_until(
                lambda: any("Still the same session." in t for t in telegram.sent_texts()),
                timeout=30,
            )
    finally:
        await telegram.stop()
    assert "make a file" in all_text(fake.requests[-1])


def _tg_ids(telegram: FakeTelegram, needle: str) -> list[int]:
    return [mid for (_, mid), m in telegram.messages.items() if needle in m.get("text", "")]


async def test_a_secret_on_the_card_is_scrubbed_and_approve_for_the_conversation_holds(
    deck_with_chat: DeckFactory, fake: FakeAnthropic, workdir: Path
) -> None:
    """The agent's secret reaches the CLI (its env lists it) but never the card; the same
    command later in the conversation runs without a second card."""
    value = "s3cr3t-deploy-token-value-42"
    command = "echo $DEPLOY_TOKEN >> token.txt && echo " + value + " >> token.txt"
    fake.script += [use("Bash", command=command), say("first"), use("Bash", command=command)]
    fake.script += [say("second")]
    extra = 'secrets = ["DEPLOY_TOKEN"]'
    text = claude_config_text(fake, workdir, extra).replace(
        'HOME = "', 'DEPLOY_TOKEN = "secret:DEPLOY_TOKEN", HOME = "'
    )
    async with deck_with_chat(make_config(text)) as (deck, chat):
        await deck.vault.set("DEPLOY_TOKEN", value, by="test")
        await chat.say("deploy")
        card = await chat.wait_for("Approval needed")
        assert value not in card.text
        assert "[redacted" in card.text
        [approval] = await deck.approvals.pending()
        assert value not in str(approval.action)
        await chat.press(f"{approval.id}:session")
        await chat.wait_for("coder: first")
        await chat.say("deploy again")
        await chat.wait_for("coder: second")
        assert await deck.approvals.pending() == []
        assert "approval.reused" in await audit_actions(deck)
        assert (await audit_actions(deck)).count("approval.requested") == 1
    assert (workdir / "token.txt").read_text().count(value) == 4


async def test_kill_9_while_a_card_waits_the_card_says_so_and_the_session_resumes(
    fake: FakeAnthropic, workdir: Path, data_dir: Path
) -> None:
    """A crash with a permission card open: the CLI is stopped at the next start (its
    group was recorded), the card says the session was interrupted, the next message
    resumes the session, and the command the card asked for never ran."""
    from tests.support.bot_process import run_console, start_then_kill

    fake.script += [use("Bash", command="touch never.txt")]  # then the fake echoes
    text = (
        claude_config_text(fake, workdir).split("[[users]]")[0]
        + claude_config_text(fake, workdir).split('role = "operator"')[1]
    )
    config = workdir.parent / "deck.toml"
    config.write_text(text)
    seen = await start_then_kill(["make it"], "[1] Approve", data_dir, config)
    assert "Approval needed" in seen
    code, out, err = await run_console(["go on"], data_dir, "--config", str(config))
    assert code == 0, err
    assert "coder: echo: go on" in out
    with sqlite3.connect(data_dir / "agentdeck.db") as db:
        query = "SELECT status, reason FROM approvals WHERE action LIKE '%cli_tool%'"
        rows = db.execute(query).fetchall()
    assert rows == [("expired", SESSION_INTERRUPTED)]
    assert not (workdir / "never.txt").exists()
    assert "make it" in all_text(fake.requests[-1])  # the session was resumed
    assert not _claude_children_anywhere(workdir)


def _claude_children_anywhere(workdir: Path) -> list[int]:
    """Any process still running the bundled CLI in this test's working directory."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(entry / "cwd") == str(workdir):
                found.append(int(entry.name))
        except OSError:
            continue
    return found


async def test_two_chats_run_at_once_and_one_chat_queues_in_order(
    deck_with_chat: DeckFactory, fake: FakeAnthropic, workdir: Path
) -> None:
    fake.script += [say("first", delay=2), say("second", delay=2), say("third")]
    async with deck_with_chat(make_config(claude_config_text(fake, workdir))) as (_deck, chat):
        await chat.say("apple", chat="test:a")
        await chat.say("pear", chat="test:b")
        async with asyncio.timeout(30):  # both turns are at the API before either answers
            while len(fake.requests) < 2:
                await asyncio.sleep(0.05)
        assert not any(": first" in t or ": second" in t for t in chat.texts())
        await chat.say("fig", chat="test:a")  # waits for "apple" in its chat
        await chat.wait_for("coder: first")
        await chat.wait_for("coder: second")
        await chat.wait_for("coder: third")
    asked = [last_user_text(r) for r in fake.requests]
    assert sorted(asked[:2]) == ["apple", "pear"]
    assert asked[2] == "fig"
    assert "apple" in all_text(fake.requests[2])  # chat a's session, resumed
    assert "pear" not in all_text(fake.requests[2])


async def test_the_agents_settings_reach_the_cli_and_its_timeout_holds(
    deck_with_chat: DeckFactory, fake: FakeAnthropic, workdir: Path
) -> None:
    fake.script += [say("Bonjour."), say("too slow", delay=20)]
    extra = (
        'model = "claude-test-model"\n'
        'instructions = "Always answer in French."\n'
        'disallowed_tools = ["WebFetch"]\n'
        "max_turns = 3\n"
        "timeout = 3"
    )
    async with deck_with_chat(make_config(claude_config_text(fake, workdir, extra))) as (
        _deck,
        chat,
    ):
        await chat.say("hello")
        await chat.wait_for("coder: Bonjour.")
        await chat.say("think slowly")
        await chat.wait_for("Claude Code took longer than 3 s.")
    first = fake.requests[0]
    assert first["model"] == "claude-test-model"
    system = " ".join(block.get("text", "") for block in first["system"])
    assert "Always answer in French." in system
    assert "WebFetch" not in {tool["name"] for tool in first["tools"]}
    async with asyncio.timeout(30):
        while not fake.aborted:  # the slow turn's CLI was stopped: it hung up
            await asyncio.sleep(0.05)


async def test_mcp_servers_are_passed_on_and_their_tools_ask_first(
    deck_with_chat: DeckFactory, fake: FakeAnthropic, workdir: Path
) -> None:
    server = Path(__file__).parent / "mcp_shout_server.py"
    fake.script += [
        use("ToolSearch", query="select:mcp__shout__shout"),  # MCP tools load on demand
        use("mcp__shout__shout", words="hello"),
        say("It shouted."),
    ]
    extra = f'mcp_servers = {{ shout = {{ command = "{sys.executable}", args = ["{server}"] }} }}'
    async with deck_with_chat(make_config(claude_config_text(fake, workdir, extra))) as (
        deck,
        chat,
    ):
        await chat.say("shout hello")
        card = await chat.wait_for("Approval needed")
        assert "mcp__shout__shout" in card.text
        [approval] = await deck.approvals.pending()
        await chat.press(f"{approval.id}:approve")
        await chat.wait_for("coder: It shouted.")
    assert "HELLO!" in str(tool_results(fake.requests[2])[-1]["content"])


async def test_an_edit_card_shows_the_file_and_a_diff(
    deck_with_chat: DeckFactory, fake: FakeAnthropic, workdir: Path
) -> None:
    target = workdir / "app.py"
    target.write_text("x = 1\n")
    fake.script += [
        use("Read", file_path=str(target)),
        use("Edit", file_path=str(target), old_string="x = 1", new_string="x = 2"),
        say("Edited."),
    ]
    async with deck_with_chat(make_config(claude_config_text(fake, workdir))) as (deck, chat):
        await chat.say("bump x")
        card = await chat.wait_for("Approval needed")
        assert f"Edit: {target}" in card.text
        assert "-x = 1" in card.text
        assert "+x = 2" in card.text
        assert target.read_text() == "x = 1\n"
        [approval] = await deck.approvals.pending()
        await chat.press(f"{approval.id}:approve")
        await chat.wait_for("coder: Edited.")
    assert target.read_text() == "x = 2\n"


def test_tool_lines_and_card_inputs() -> None:
    from roster.claude import card_input, edit_preview, tool_line

    assert tool_line("Bash", {"command": "npm   test\n--watch"}) == "Bash: npm test --watch"
    assert tool_line("Edit", {"file_path": "src/app.py", "old_string": "a"}) == "Edit: src/app.py"
    assert tool_line("TodoWrite", {"todos": []}) == "TodoWrite"
    long = card_input({"content": "y" * 10_000, "command": "ls"})
    assert len(long["content"]) == 4001
    assert long["command"] == "ls"
    assert edit_preview({"old_string": "a\nb", "new_string": "a\nc"}).splitlines() == [
        "@@ -1,2 +1,2 @@",
        " a",
        "-b",
        "+c",
    ]


async def test_a_cli_that_refuses_to_start_says_why_in_chat(
    deck_with_chat: DeckFactory, fake: FakeAnthropic, workdir: Path
) -> None:
    if os.geteuid() != 0:
        pytest.skip("Claude Code refuses bypassPermissions only as root")
    extra = 'permission_mode = "bypassPermissions"'
    async with deck_with_chat(make_config(claude_config_text(fake, workdir, extra))) as (
        _deck,
        chat,
    ):
        await chat.say("anything")
        failed = await chat.wait_for("coder: Claude Code failed:")
    assert "root" in failed.text
    assert fake.requests == []


async def test_a_settings_file_in_the_repo_does_not_approve_tools(
    deck_with_chat: DeckFactory, fake: FakeAnthropic, workdir: Path
) -> None:
    """A cloned repo (or the agent itself) can write .claude/settings.local.json allowing
    every Bash command: the agent reads no settings file, so the card still comes."""
    settings = workdir / ".claude" / "settings.local.json"
    settings.parent.mkdir()
    settings.write_text('{"permissions": {"allow": ["Bash", "Bash(*)", "Bash(touch:*)"]}}')
    home_settings = workdir.parent / "home" / ".claude" / "settings.json"
    home_settings.parent.mkdir(parents=True)
    home_settings.write_text(settings.read_text())
    fake.script += [use("Bash", command="touch sneaky.txt"), say("tried")]
    async with deck_with_chat(make_config(claude_config_text(fake, workdir))) as (deck, chat):
        await chat.say("do it")
        await chat.wait_for("Approval needed")
        assert not (workdir / "sneaky.txt").exists()
        [approval] = await deck.approvals.pending()
        await chat.press(f"{approval.id}:deny")
        await chat.wait_for("coder: tried")
    assert not (workdir / "sneaky.txt").exists()
