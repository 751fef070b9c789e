"""Voice notes in (#19 point 2): fetched through the Bot API (getFile + the file download)
or Slack's files.info + url_private (with the bot token, only from Slack, only for a
file shared in that chat),
written down at the fake OpenAI's `/audio/transcriptions`, shown back in a short quote and
handled as the message's text — with the rights of typed text from the same person and no
more (the attack tests: a spoken secret, a spoken approval by a non-approver, a stranger).

The fake OpenAI "hears" a recording's bytes as UTF-8 text, so tests speak in text.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.config import Config
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.slack_server import BOT_TOKEN, FakeSlack
from tests.fakes.telegram_server import FakeTelegram
from tests.support.config import make_config
from tests.support.decks import audit_actions, running
from tests.support.slack import CONFIG as SLACK_CONFIG
from tests.support.slack import slack_deck
from tests.support.telegram import ADMIN, CONFIG, STRANGER
from tests.support.telegram import OPERATOR as VIEWER

VOICE = """
[llm]
base_url = "OPENAI_URL"
api_key = "env:TEST_OPENAI_KEY"
max_retries = 0
transcription_model = "whisper-1"
[[agents]]
name = "ops"
kind = "echo"
"""


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")


def voice_config(
    telegram: FakeTelegram, openai: FakeOpenAI, extra: str = "", *, model: bool = True
) -> Config:
    text = CONFIG.replace("BASE_URL", telegram.base_url).replace(
        'base_url = "' + telegram.base_url + '"',
        f'base_url = "{telegram.base_url}"\nbase_file_url = "{telegram.base_file_url}"',
    )
    voice = VOICE.replace("OPENAI_URL", openai.base_url)
    if not model:
        voice = voice.replace('transcription_model = "whisper-1"\n', "")
    return make_config(text + voice + extra)


def texts(fake: FakeTelegram, chat: int) -> list[str]:
    return fake.sent_texts(chat)


async def test_a_voice_note_is_written_down_shown_and_routed_by_its_words(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    async with running(voice_config(fake_telegram, fake_openai)) as deck:
        fake_telegram.user_voice(b"@ops check the disk", user=ADMIN)
        await fake_telegram.wait_until(lambda: "ops: check the disk" in texts(fake_telegram, ADMIN))
        actions = await audit_actions(deck)
    assert texts(fake_telegram, ADMIN) == ["🎤 @ops check the disk", "ops: check the disk"]
    quote = fake_telegram.calls_to("sendMessage")[0].params["text"]
    assert quote == "<blockquote>🎤 @ops check the disk</blockquote>"
    (model, name, content) = fake_openai.transcriptions[0]
    assert (model, content) == ("whisper-1", b"@ops check the disk")
    assert name.endswith(".ogg")
    assert fake_telegram.calls_to("getFile")
    assert [c for c in fake_telegram.calls if c.method == "download"]
    assert "voice.transcribed" in actions


async def test_a_spoken_command_runs_as_the_typed_one(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    async with running(voice_config(fake_telegram, fake_openai)):
        fake_telegram.user_voice(b"/agents", user=ADMIN)
        await fake_telegram.wait_until(
            lambda: any(t.startswith("Agents") for t in texts(fake_telegram, ADMIN))
        )


async def test_without_a_transcription_model_the_answer_says_how_to_set_one(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    async with running(voice_config(fake_telegram, fake_openai, model=False)) as deck:
        fake_telegram.user_voice(b"hello", user=ADMIN)
        await fake_telegram.wait_for("sendMessage")
        actions = await audit_actions(deck)
    (text,) = texts(fake_telegram, ADMIN)
    assert "[llm] transcription_model" in text
    assert "refused.voice" in actions
    assert not fake_telegram.calls_to("getFile")  # nothing fetched for nothing
    assert fake_openai.transcriptions == []


async def test_a_file_above_the_limit_is_refused_before_it_is_fetched(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    config = voice_config(fake_telegram, fake_openai)
    config = config.model_copy(
        update={"deck": config.deck.model_copy(update={"max_file_mb": 0.001})}
    )  # about 1 KB
    async with running(config):
        fake_telegram.user_voice(b"x" * 5000, user=ADMIN)
        await fake_telegram.wait_for("sendMessage")
    (text,) = texts(fake_telegram, ADMIN)
    assert "I take files up to" in text
    assert "max_file_mb" in text
    assert not fake_telegram.calls_to("getFile")
    assert fake_openai.transcriptions == []


async def test_a_file_whose_size_was_not_announced_is_checked_when_it_arrives(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    config = voice_config(fake_telegram, fake_openai)
    config = config.model_copy(
        update={"deck": config.deck.model_copy(update={"max_file_mb": 0.001})}
    )
    async with running(config):
        file = fake_telegram.add_file(b"y" * 5000)
        del file["file_size"]
        fake_telegram.user_sends({"voice": {**file, "duration": 1}}, user=ADMIN)
        await fake_telegram.wait_for("sendMessage")
    (text,) = texts(fake_telegram, ADMIN)
    assert "I take files up to" in text
    assert fake_openai.transcriptions == []


async def test_attack_a_spoken_secret_is_refused_and_never_echoed(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    async with running(voice_config(fake_telegram, fake_openai)) as deck:
        fake_telegram.user_voice(b"/secret set TOKEN hunter2-spoken", user=ADMIN)
        await fake_telegram.wait_for("sendMessage")
        actions = await audit_actions(deck)
        stored = [info.name for info in await deck.vault.listing()]
    (text,) = texts(fake_telegram, ADMIN)
    assert "type it, don't say it" in text
    assert "hunter2" not in "".join(texts(fake_telegram, ADMIN))
    assert "TOKEN" not in stored
    assert "refused.spoken_private" in actions


async def test_attack_a_spoken_approval_gets_no_more_than_a_typed_one(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    """The operator is not an approver of `shell`: typed or spoken, /approve is refused."""
    async with running(voice_config(fake_telegram, fake_openai)) as deck:
        fake_telegram.user_says("/ask shell hi", user=VIEWER)
        (card,) = [
            c
            for c in await fake_telegram.wait_for("sendMessage")
            if "Approval needed" in c.params["text"]
        ]
        approve = card.params["reply_markup"]["inline_keyboard"][0][0]["callback_data"]
        approval_id = approve.partition("|")[2].partition(":")[0]
        fake_telegram.user_says(f"/approve {approval_id}", user=VIEWER)
        await fake_telegram.wait_for("sendMessage", 2)
        typed = texts(fake_telegram, VIEWER)[-1]
        fake_telegram.user_voice(f"/approve {approval_id}".encode(), user=VIEWER)
        await fake_telegram.wait_for("sendMessage", 4)
        spoken = texts(fake_telegram, VIEWER)[-1]
        pending = [a.id for a in await deck.approvals.pending()]
    assert spoken == typed
    assert approval_id in pending  # still waiting for an approver
    assert not any("hi" in t and "exit 0" in t for t in fake_telegram.sent_texts())


async def test_attack_a_strangers_voice_is_never_fetched_nor_written_down(
    fake_telegram: FakeTelegram, fake_openai: FakeOpenAI
) -> None:
    async with running(voice_config(fake_telegram, fake_openai)):
        fake_telegram.user_voice(b"/agents", user=STRANGER)
        await fake_telegram.wait_for("sendMessage")
    (text,) = texts(fake_telegram, STRANGER)
    assert "only work for the people listed" in text
    assert not fake_telegram.calls_to("getFile")
    assert fake_openai.transcriptions == []


# -- Slack: files.info, then url_private with the bot token ------------------------------


def slack_voice(openai: FakeOpenAI) -> str:
    return SLACK_CONFIG + VOICE.replace("OPENAI_URL", openai.base_url)


def audio_event(file: dict[str, Any], channel: str = "D1") -> dict[str, Any]:
    return {
        "type": "message",
        "subtype": "file_share",
        "channel_type": "im",
        "channel": channel,
        "user": "UOP",
        "text": "",
        "ts": "1700000000.000100",
        "files": [file],
    }


async def test_a_slack_audio_clip_is_fetched_with_the_bot_token_and_handled(
    fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    file = fake_slack.share_file(
        b"@ops restart the queue", name="clip.webm", mimetype="audio/webm", channel="D1"
    )
    async with slack_deck(fake_slack, slack_voice(fake_openai)) as (_deck, slack):
        assert (await slack.event(audio_event(file))).status == 200
        answer = await fake_slack.wait_for_text("*ops*: restart")
        quote = await fake_slack.wait_for_text("🎤")
    assert answer.shown == "*ops*: restart the queue"
    assert quote.shown == "> 🎤 @ops restart the queue"  # a Slack quote
    assert fake_slack.downloads == [(file["id"], BOT_TOKEN)]
    assert fake_openai.transcriptions[0][1] == "clip.webm"


async def test_attack_a_file_shared_in_another_chat_is_not_fetched(
    fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    elsewhere = fake_slack.share_file(
        b"secret plans", name="c.webm", mimetype="audio/webm", channel="CPRIVATE"
    )
    async with slack_deck(fake_slack, slack_voice(fake_openai)) as (_deck, slack):
        assert (await slack.event(audio_event(elsewhere, channel="D1"))).status == 200
        refusal = await fake_slack.wait_for_text("could not fetch that file")
    assert "file_not_shared_in_this_chat" in refusal.shown
    assert fake_slack.downloads == []
    assert fake_openai.transcriptions == []


async def test_attack_the_bot_token_never_goes_to_another_host(
    fake_slack: FakeSlack, fake_openai: FakeOpenAI
) -> None:
    port = fake_slack.url.rsplit(":", 1)[1]
    file = fake_slack.share_file(
        b"x",
        name="c.webm",
        mimetype="audio/webm",
        channel="D1",
        url=f"http://127.0.0.2:{port}/files-pri/F0000001/c.webm",
    )
    async with slack_deck(fake_slack, slack_voice(fake_openai)) as (_deck, slack):
        assert (await slack.event(audio_event(file))).status == 200
        refusal = await fake_slack.wait_for_text("could not fetch that file")
    assert "file_url_not_on_slack" in refusal.shown
    assert fake_slack.downloads == []
