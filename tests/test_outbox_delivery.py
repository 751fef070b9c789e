"""Outgoing messages through the outbox with the real transports against the fakes:
a lost answer never makes a second post, a transport that fails is retried by itself
while the others go on, and a message pending when a deck stops arrives after restart."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app import open_deck
from bot.delivery import transport_links as links
from storage.clock import FakeClock
from tests.fakes.slack_server import BOT_TOKEN, SIGNING_SECRET, FakeSlack
from tests.fakes.telegram_server import FakeTelegram
from tests.support.outbox import deck_with_slack, delivery_config, posted, wait_for_row
from tests.support.telegram import ADMIN


async def test_slack_answer_lost_once_is_found_not_posted_again(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    config = delivery_config(tmp_path, telegram=None, slack=fake_slack)
    async with deck_with_slack(config) as (deck, slack):
        fake_slack.fail_next("chat.postMessage", "lose")
        await slack.mention("only once")
        row = await wait_for_row(deck, "sent", "only once")
        await deck.tasks.drain()
        assert posted(fake_slack, "only once") == ["*echo*: only once"]
        assert len(fake_slack.called("chat.postMessage")) == 1  # found, not posted again
        assert fake_slack.called("conversations.replies")
        (message,) = fake_slack.messages.values()
        assert message.metadata == {
            "event_type": "agentdeck_message",
            "event_payload": {"key": row.key},
        }
        assert row.key.startswith("slack:Ev")
        assert row.key.endswith("#1")


async def test_slack_post_dropped_before_it_arrived_is_posted_after_looking(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    config = delivery_config(tmp_path, telegram=None, slack=fake_slack)
    async with deck_with_slack(config) as (deck, slack):
        fake_slack.fail_next("chat.postMessage", "drop")  # never reached Slack
        await slack.mention("late but there")
        await wait_for_row(deck, "sent", "late but there")
        assert posted(fake_slack, "late but there") == ["*echo*: late but there"]
        assert len(fake_slack.called("chat.postMessage")) == 2


async def test_telegram_answer_lost_is_not_sent_twice_and_the_admin_is_told(
    fake_telegram: FakeTelegram, tmp_path: Path
) -> None:
    config = delivery_config(tmp_path, telegram=fake_telegram, slack=None)
    async with asyncio.timeout(60), open_deck(config) as (deck, _):
        # The "agentdeck started" note goes out in the background: not the one to lose.
        await fake_telegram.wait_until(lambda: bool(fake_telegram.calls_to("sendMessage")))
        fake_telegram.lose_next("sendMessage")  # carried out, its answer lost
        fake_telegram.user_says("maybe lost", user=ADMIN)
        await wait_for_row(deck, "unconfirmed", "maybe lost")
        await fake_telegram.wait_until(
            lambda: any("may not have arrived" in t for t in fake_telegram.sent_texts(ADMIN))
        )
        await deck.tasks.drain()
        echoes = [t for t in fake_telegram.sent_texts(ADMIN) if t == "echo: maybe lost"]
        assert echoes == ["echo: maybe lost"]  # delivered by the lost call, never again
        (told,) = [t for t in fake_telegram.sent_texts(ADMIN) if "may not have arrived" in t]
        assert "not sent again" in told
        assert "echo: maybe lost" in told


async def test_a_revoked_slack_token_leaves_telegram_alone_and_slack_recovers(
    fake_slack: FakeSlack,
    fake_telegram: FakeTelegram,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(links, "RETRY_FIRST_SECONDS", 0.2)
    config = delivery_config(tmp_path, telegram=fake_telegram, slack=fake_slack)
    async with deck_with_slack(config) as (deck, slack):
        await slack.mention("before")  # bolt checks the token once, then trusts it
        await wait_for_row(deck, "sent", "before")
        fake_slack.revoke()
        await slack.mention("while revoked")
        await wait_for_row(deck, "pending", "while revoked")
        assert deck.links is not None
        assert not deck.links.is_up("slack")
        fake_telegram.user_says("telegram still works", user=ADMIN)
        await fake_telegram.wait_until(
            lambda: "echo: telegram still works" in fake_telegram.sent_texts(ADMIN)
        )
        fake_telegram.user_says("/status", user=ADMIN)
        await fake_telegram.wait_until(
            lambda: any("slack retrying since" in t for t in fake_telegram.sent_texts(ADMIN))
        )
        status = next(t for t in fake_telegram.sent_texts(ADMIN) if "slack retrying" in t)
        assert "telegram up" in status
        assert "token_revoked" in status
        assert "next attempt" in status
        fake_slack.restore()
        await wait_for_row(deck, "sent", "while revoked")
        assert deck.links.is_up("slack")
        assert posted(fake_slack, "while revoked") == ["*echo*: while revoked"]
        assert len(fake_slack.called("auth.test")) >= 2  # at start, then the probes


async def test_a_message_pending_when_the_deck_stops_arrives_after_restart_once(
    fake_slack: FakeSlack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(links, "RETRY_FIRST_SECONDS", 3600.0)  # no recovery in this life
    config = delivery_config(tmp_path, telegram=None, slack=fake_slack)
    async with deck_with_slack(config) as (deck, slack):
        await slack.mention("before")
        await wait_for_row(deck, "sent", "before")
        fake_slack.revoke()
        await slack.mention("after the restart")
        await wait_for_row(deck, "pending", "after the restart")
    fake_slack.restore()
    assert not posted(fake_slack, "after the restart")
    async with deck_with_slack(config) as (deck, _slack):
        await wait_for_row(deck, "sent", "after the restart")
        assert posted(fake_slack, "after the restart") == ["*echo*: after the restart"]


class HangingSlack(FakeSlack):
    """Posts the message, then never answers: the bot stops while the post is in flight."""

    def __init__(self) -> None:
        super().__init__()
        self.hang = False
        self.release = asyncio.Event()

    async def _chat_postMessage(self, args: dict[str, Any]) -> dict[str, Any]:
        answer = await super()._chat_postMessage(args)
        if self.hang:
            await self.release.wait()  # answers only after the bot has gone
        return answer


async def test_a_post_in_flight_when_the_deck_stops_is_found_after_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    fake = await HangingSlack().start()
    clock = FakeClock(datetime.now(UTC))
    config = delivery_config(tmp_path, telegram=None, slack=fake)
    short_stop = config.deck.model_copy(update={"stop_grace_seconds": 0.5})
    config = config.model_copy(update={"deck": short_stop})
    try:
        async with deck_with_slack(config, clock) as (deck, slack):
            fake.hang = True
            await slack.mention("in flight")
            await fake.wait_for_text("in flight")
            await wait_for_row(deck, "sending", "in flight")
        fake.hang = False
        fake.release.set()
        clock.advance(timedelta(minutes=3))  # the dead attempt's lease has run out
        async with deck_with_slack(config, clock) as (deck, _slack):
            await wait_for_row(deck, "sent", "in flight")
            assert posted(fake, "in flight") == ["*echo*: in flight"]
            assert len(fake.called("chat.postMessage")) == 1
    finally:
        await fake.stop()


async def test_telegram_never_answers_a_bot(fake_telegram: FakeTelegram, tmp_path: Path) -> None:
    """The loop guard: another bot (or this one) writing is not answered, a person is."""
    config = delivery_config(tmp_path, telegram=fake_telegram, slack=None)
    async with asyncio.timeout(60), open_deck(config) as (deck, _):
        bots: tuple[dict[str, Any], ...] = (
            {"id": 777, "is_bot": True, "first_name": "Other"},
            {"id": 4242, "is_bot": True, "first_name": "Deck"},
        )
        for sender in bots:
            fake_telegram._enqueue(
                {
                    "message": {
                        "message_id": 900 + sender["id"],
                        "date": 0,
                        "chat": fake_telegram.chat(ADMIN),
                        "from": sender,
                        "text": "echo: are you there",
                    }
                }
            )
        fake_telegram.user_says("a person", user=ADMIN)
        await fake_telegram.wait_until(lambda: "echo: a person" in fake_telegram.sent_texts())
        await deck.tasks.drain()
        start_notes = ("agentdeck is back", "agentdeck started")  # to the admin chat, any time
        answers = [t for t in fake_telegram.sent_texts() if not t.startswith(start_notes)]
        assert answers == ["echo: a person"]
