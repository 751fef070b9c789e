"""Streamed answers (#19 point 6): an llm agent's answer grows in one Telegram message
(the first text at once, then edits at about one a second), the final text replaces it
and is what the run stores; a stream cut off mid-way ends with a clear note and is not
asked again, one cut before any text is asked again; tool calls in a stream work.
Streams go down the agent's chain of models (`roster.providers`): a stream that breaks
twice before any text hands over to the next provider, one cut after text does not.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from sqlmodel import select

from bot.config import Config
from bot.deck import Deck
from bot.runs import progress
from storage.models import Run, RunState
from tests.fakes.openai_server import FakeOpenAI, call, say, stream
from tests.fakes.slack_server import FakeSlack
from tests.fakes.telegram_server import FakeTelegram
from tests.support.config import make_config
from tests.support.decks import running
from tests.support.slack import CONFIG as SLACK_CONFIG
from tests.support.slack import slack_deck
from tests.support.telegram import ADMIN, CONFIG
from tests.support.waiting import eventually

WRITER = """
[llm]
base_url = "OPENAI_URL"
api_key = "env:TEST_OPENAI_KEY"
max_retries = 0
[[agents]]
name = "writer"
kind = "llm"
model = "fake-model"
tools = ["recall"]
"""
ANSWER = "The disk **is fine**: 42% used on /, 17% on /var. Nothing to do today, all good."


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")


def streaming_config(telegram: FakeTelegram, openai: FakeOpenAI) -> Config:
    text = CONFIG.replace("BASE_URL", telegram.base_url)
    return make_config(text + WRITER.replace("OPENAI_URL", openai.base_url))


def shown(fake: FakeTelegram) -> list[str]:
    """Every text the bot sent or edited to, in order (HTML as sent)."""
    return [c.params["text"] for c in fake.calls if c.method in ("sendMessage", "editMessageText")]


async def final_run(deck: Deck) -> Run:
    """The one run, once its end is written (that follows the answer going out)."""

    async def finished() -> Run | None:
        await deck.runner.flush()
        async with deck.db.session() as session:
            (run,) = (await session.exec(select(Run))).all()
        return run if run.finished_at is not None else None

    return await eventually(finished)


async def test_the_answer_grows_in_one_message_then_the_final_text_replaces_it(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [stream(ANSWER, delay=0.25, chars=4)]  # about five seconds
    async with running(streaming_config(fake_telegram, fake_openai)) as deck:
        fake_telegram.user_says("@writer how is the disk?", user=ADMIN)
        final = "<b>writer</b>: The disk <b>is fine</b>: 42% used"
        await fake_telegram.wait_until(
            lambda: any(t.startswith(final) and not t.endswith(" …") for t in shown(fake_telegram)),
            timeout=15,
        )
        run = await final_run(deck)
    texts = shown(fake_telegram)
    (first,) = fake_telegram.calls_to("sendMessage")  # one message, edited
    growing = [t for t in texts if t.endswith(" …")]
    assert len(growing) >= 4, texts  # the first text, then at least three growing edits
    lengths = [len(t) for t in growing]
    assert lengths == sorted(lengths)
    assert first.params["text"] == growing[0]
    assert texts[-1] == (
        "<b>writer</b>: The disk <b>is fine</b>: 42% used on /, 17% on /var. "
        "Nothing to do today, all good."
    )
    (message_id,) = [key[1] for key in fake_telegram.messages if key[0] == ADMIN]
    edited = {int(c.params["message_id"]) for c in fake_telegram.calls_to("editMessageText")}
    assert edited == {message_id}
    assert run.output == ANSWER  # what is stored is the final text
    assert fake_openai.requests[0]["stream"] is True


async def test_a_stream_cut_off_mid_way_ends_with_a_clear_note_and_is_not_asked_again(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [stream(ANSWER, chars=4, break_after=6)]
    async with running(streaming_config(fake_telegram, fake_openai)) as deck:
        fake_telegram.user_says("@writer how is the disk?", user=ADMIN)
        await fake_telegram.wait_until(
            lambda: any("broke off" in t for t in fake_telegram.sent_texts(ADMIN)), timeout=15
        )
        run = await final_run(deck)
    (end,) = [t for t in fake_telegram.sent_texts(ADMIN) if "broke off" in t]
    assert end.startswith("writer: The disk **is fine**")  # what was shown, as it was said
    assert "(the answer broke off here:" in end
    assert len(fake_openai.requests) == 1
    assert run.status == RunState.FAILED


async def test_a_stream_cut_before_any_text_is_asked_again(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [stream(ANSWER, break_after=0), stream("second time lucky")]
    async with running(streaming_config(fake_telegram, fake_openai)):
        fake_telegram.user_says("@writer again?", user=ADMIN)
        await fake_telegram.wait_until(
            lambda: "writer: second time lucky" in fake_telegram.sent_texts(ADMIN), timeout=15
        )
    assert len(fake_openai.requests) == 2


BACKUP = """
[llm.providers.backup]
base_url = "BACKUP_URL"
api_key = "env:TEST_OPENAI_KEY"
"""


@pytest.fixture
async def backup() -> AsyncIterator[FakeOpenAI]:
    server = await FakeOpenAI().start()
    yield server
    await server.stop()


def with_fallback(telegram: FakeTelegram, openai: FakeOpenAI, backup: FakeOpenAI) -> Config:
    """The writer, falling back to the model "spare" on a second provider."""
    agent = WRITER.replace("OPENAI_URL", openai.base_url) + 'fallback = ["backup:spare"]\n'
    text = CONFIG.replace("BASE_URL", telegram.base_url) + agent
    return make_config(text + BACKUP.replace("BACKUP_URL", backup.base_url))


async def test_a_stream_cut_twice_before_any_text_goes_to_the_next_provider(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI, backup: FakeOpenAI
) -> None:
    fake_openai.script = [stream(ANSWER, break_after=0), stream(ANSWER, break_after=0)]
    backup.by_model["spare"] = [stream("from the spare", chars=3)]
    async with running(with_fallback(fake_telegram, fake_openai, backup)) as deck:
        fake_telegram.user_says("@writer how is the disk?", user=ADMIN)
        await fake_telegram.wait_until(
            lambda: any("answered by" in t for t in fake_telegram.sent_texts(ADMIN)), timeout=15
        )
        run = await final_run(deck)
    (answer,) = [t for t in fake_telegram.sent_texts(ADMIN) if "answered by" in t]
    assert answer.startswith("writer: from the spare\n(answered by backup:spare (fake-model: ")
    assert [r["model"] for r in fake_openai.requests] == ["fake-model", "fake-model"]
    assert [(r["model"], r["stream"]) for r in backup.requests] == [("spare", True)]
    assert (run.status, run.output) == (RunState.DONE, "from the spare")


async def test_a_stream_cut_after_text_is_not_handed_to_the_next_provider(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI, backup: FakeOpenAI
) -> None:
    fake_openai.script = [stream(ANSWER, chars=4, break_after=6)]
    backup.by_model["spare"] = [stream("a different answer")]
    async with running(with_fallback(fake_telegram, fake_openai, backup)) as deck:
        fake_telegram.user_says("@writer how is the disk?", user=ADMIN)
        await fake_telegram.wait_until(
            lambda: any("broke off" in t for t in fake_telegram.sent_texts(ADMIN)), timeout=15
        )
        run = await final_run(deck)
    (end,) = [t for t in fake_telegram.sent_texts(ADMIN) if "broke off" in t]
    assert end.startswith("writer: The disk **is fine**")
    assert (len(fake_openai.requests), backup.requests) == (1, [])
    assert run.status == RunState.FAILED


async def test_tool_calls_in_a_stream_work_as_before(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [call("recall", query="disk"), stream("nothing noted about disks")]
    async with running(streaming_config(fake_telegram, fake_openai)):
        fake_telegram.user_says("@writer what did we note?", user=ADMIN)
        await fake_telegram.wait_until(
            lambda: "writer: nothing noted about disks" in fake_telegram.sent_texts(ADMIN),
            timeout=15,
        )
    tool_messages = [m for m in fake_openai.requests[1]["messages"] if m["role"] == "tool"]
    assert len(tool_messages) == 1


async def test_in_slack_the_answer_grows_by_chat_update(
    fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    fake_openai.script = [stream(ANSWER, delay=0.15, chars=4)]  # about three seconds
    text = SLACK_CONFIG + WRITER.replace("OPENAI_URL", fake_openai.base_url)
    async with slack_deck(fake_slack, text) as (_deck, slack):
        await slack.mention("@writer how is the disk?")
        message = await fake_slack.wait_for(
            lambda fake: next(
                (m for m in fake.messages.values() if m.shown.endswith("all good.")), None
            )
        )
    assert message.edits >= 2
    assert all(shown.endswith(" …") for shown in message.history[:2])
    assert message.shown == "*writer*: The disk *is fine*: 42% used on /, 17% on /var. " + (
        "Nothing to do today, all good."
    )


async def test_in_slack_an_answer_after_working_replaces_it_without_waiting_the_edit_pace(
    fake_slack: FakeSlack, fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Slack has no typing indicator, so a 1 s answer follows a "working…" message; the
    edit pace is for streamed edits, and with a pace of 60 s the answer still comes now."""
    monkeypatch.setattr(progress, "EDIT_INTERVAL_SECONDS", 60.0)
    fake_openai.script = [say(ANSWER, delay=1.0)]
    text = SLACK_CONFIG + WRITER.replace("OPENAI_URL", fake_openai.base_url)
    async with slack_deck(fake_slack, text) as (_deck, slack):
        await slack.mention("@writer how is the disk?")
        async with asyncio.timeout(20):
            message = await fake_slack.wait_for(
                lambda fake: next(
                    (m for m in fake.messages.values() if m.shown.endswith("all good.")), None
                )
            )
    assert message.edits == 1
    assert "working…" in message.history[0]
