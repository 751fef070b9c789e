"""Nothing a person sends is dropped in silence (#19 point 1): a message the bot cannot use
(a sticker, a location, a poll, a contact…) gets one line saying what the bot takes.

End to end through the real transports: Telegram against the fake Bot API, Slack with
signed events against the fake Slack.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.fakes.slack_server import FakeSlack
from tests.fakes.telegram_server import FakeTelegram
from tests.support.decks import audit_actions, running
from tests.support.slack import slack_deck
from tests.support.telegram import ADMIN, GROUP, STRANGER, config_for

STICKER = {
    "file_id": "s1",
    "file_unique_id": "us1",
    "type": "regular",
    "width": 512,
    "height": 512,
    "is_animated": False,
    "is_video": False,
}
LOCATION = {"latitude": 52.52, "longitude": 13.40}
VENUE = {"location": LOCATION, "title": "Hall", "address": "Main St 1"}
POLL = {
    "id": "p1",
    "question": "Lunch?",
    "options": [
        {"text": "yes", "voter_count": 0, "persistent_id": "o1"},
        {"text": "no", "voter_count": 0, "persistent_id": "o2"},
    ],
    "total_voter_count": 0,
    "is_closed": False,
    "is_anonymous": True,
    "type": "regular",
    "allows_multiple_answers": False,
    "allows_revoting": False,
    "members_only": False,
}
CLIP = {"file_id": "a1", "file_unique_id": "ua1", "width": 1, "height": 1, "duration": 1}
KINDS: list[tuple[dict[str, Any], str]] = [
    ({"sticker": STICKER}, "a sticker"),
    ({"location": LOCATION}, "a location"),
    ({"venue": VENUE, "location": LOCATION}, "a place"),
    ({"contact": {"phone_number": "+100", "first_name": "Ann"}}, "a contact"),
    ({"poll": POLL}, "a poll"),
    ({"dice": {"emoji": "🎲", "value": 3}}, "a dice roll"),
    ({"animation": CLIP, "document": {"file_id": "a1", "file_unique_id": "ua1"}}, "a GIF"),
    ({"video": CLIP}, "a video"),
]


@pytest.mark.parametrize(("content", "kind"), KINDS, ids=[k for _, k in KINDS])
async def test_each_kind_gets_one_line_saying_what_the_bot_takes(
    fake_telegram: FakeTelegram, content: dict[str, Any], kind: str
) -> None:
    async with running(config_for(fake_telegram)) as deck:
        fake_telegram.user_sends(content, user=ADMIN)
        await fake_telegram.wait_for("sendMessage")
        assert "refused.unsupported" in await audit_actions(deck)
    text = fake_telegram.sent_texts(ADMIN)[0]
    assert text.startswith(f"I can't use {kind}.")
    assert "Send me text" in text
    assert "\n" not in text
    assert len(fake_telegram.sent_texts(ADMIN)) == 1  # one line, and no agent ran on it


async def test_a_caption_does_not_make_an_unusable_message_run(
    fake_telegram: FakeTelegram,
) -> None:
    """A sticker or a GIF with words: the words are about the thing the bot cannot see."""
    async with running(config_for(fake_telegram)):
        fake_telegram.user_sends({"sticker": STICKER, "caption": "what is this?"}, user=ADMIN)
        await fake_telegram.wait_for("sendMessage")
    (text,) = fake_telegram.sent_texts(ADMIN)
    assert text.startswith("I can't use a sticker.")


async def test_a_stranger_gets_the_refusal_not_the_kind(fake_telegram: FakeTelegram) -> None:
    async with running(config_for(fake_telegram)) as deck:
        fake_telegram.user_sends({"location": LOCATION}, user=STRANGER)
        await fake_telegram.wait_for("sendMessage")
        actions = await audit_actions(deck)
    (text,) = fake_telegram.sent_texts(STRANGER)
    assert "only work for the people listed" in text
    assert "refused.unknown_user" in actions
    assert "refused.unsupported" not in actions


async def test_group_chatter_stays_unanswered_but_a_reply_to_the_bot_is_answered(
    fake_telegram: FakeTelegram,
) -> None:
    async with running(config_for(fake_telegram)):
        fake_telegram.user_sends({"sticker": STICKER}, user=ADMIN, chat=GROUP)
        fake_telegram.user_says("/help", user=ADMIN, chat=GROUP)
        await fake_telegram.wait_for("sendMessage")
        (mine,) = [key[1] for key in fake_telegram.messages if key[0] == GROUP]  # /help's answer
        fake_telegram.user_sends({"sticker": STICKER}, user=ADMIN, chat=GROUP, reply_to=mine)
        await fake_telegram.wait_for("sendMessage", 2)
        fake_telegram.user_sends(
            {"location": LOCATION, "caption": "@deck_bot here"}, user=ADMIN, chat=GROUP
        )
        await fake_telegram.wait_for("sendMessage", 3)
    texts = fake_telegram.sent_texts(GROUP)
    assert [t for t in texts if t.startswith("I can't use")] == [
        "I can't use a sticker. Send me text: a question for an agent, or a /command (/help).",
        "I can't use a location. Send me text: a question for an agent, or a /command (/help).",
    ]


async def test_a_service_message_is_nobody_talking(fake_telegram: FakeTelegram) -> None:
    async with running(config_for(fake_telegram)):
        fake_telegram.user_sends({"new_chat_title": "renamed"}, user=ADMIN, chat=GROUP)
        fake_telegram.user_says("hello", user=ADMIN)
        await fake_telegram.wait_for("sendMessage")
    assert fake_telegram.sent_texts(GROUP) == []
    assert fake_telegram.sent_texts(ADMIN) == ["echo: hello"]


async def test_slack_file_without_words_is_answered(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (deck, slack):
        event = {
            "type": "message",
            "subtype": "file_share",
            "channel_type": "im",
            "channel": "D1",
            "user": "UOP",
            "text": "",
            "ts": "1700000000.000001",
            "files": [{"id": "F1", "name": "clip.mp4", "mimetype": "video/mp4"}],
        }
        assert (await slack.event(event)).status == 200
        answer = await fake_slack.wait_for_text("I can't use")
        assert "refused.unsupported" in await audit_actions(deck)
    assert answer.shown.startswith("I can't use a video.")
