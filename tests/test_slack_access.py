"""A Slack user whom Access refuses gets nothing of theirs posted by the bot and changes
nothing a member relies on: through the real bolt app against the fake Slack."""

from __future__ import annotations

from sqlmodel import select

from bot.deck import Deck
from storage.models import AuditEvent
from tests.fakes.slack_server import FakeSlack
from tests.support.slack import everything_slack_got, slack_deck

WORD = "hijack-4711"


async def _refusals(deck: Deck) -> list[AuditEvent]:
    await deck.runner.flush()
    async with deck.db.session() as session:
        rows = (await session.exec(select(AuditEvent))).all()
    return [r for r in rows if r.action == "refused.unknown_user"]


async def test_a_strangers_slash_command_is_not_echoed(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (deck, slack):
        url = f"{fake_slack.url}/respond/7"
        answer = await slack.command(f"ask other {WORD}", user="USTRANGER", response_url=url)
        assert answer.status == 200
        (told,) = await fake_slack.wait_for(lambda f: f.responses)
        assert "only work for the people listed" in told["text"]
        assert told["response_type"] == "ephemeral"  # the refusal reaches the stranger alone
        await deck.tasks.drain()
        assert fake_slack.called("chat.postMessage") == []
        assert WORD not in everything_slack_got(fake_slack)
        assert len(await _refusals(deck)) == 1


async def test_a_stranger_cannot_set_a_threads_agent(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (deck, slack):
        thread = await slack.mention("@other first")
        await fake_slack.wait_for_text("other*: first")
        await slack.mention(f"@echo {WORD}", user="USTRANGER", thread_ts=thread)
        await slack.command(f"ask echo {WORD}", user="USTRANGER")
        await slack.mention("second", thread_ts=thread)
        await fake_slack.wait_for_text("other*: second")
        await deck.tasks.drain()
        assert "echo*:" not in everything_slack_got(fake_slack)
        assert WORD not in everything_slack_got(fake_slack)
        assert len(await _refusals(deck)) >= 1
