"""Bot API errors on sends, through the real Telegram transport against the fake Bot API.

A 5xx that carries the Bot API's answer says the message was not sent: it is sent again
and arrives once. A 429 is waited out. Only a lost answer (the connection closed after
the request went out, or a proxy's 502/504 page) is uncertain: never sent twice, marked
`unconfirmed`, and the admin chat is told. Notices to the admin chat go through the same
outbox with keys of their own, so a 500 does not lose them either.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from telegram.error import NetworkError, RetryAfter

from bot.app import open_deck
from bot.config import Config
from bot.delivery import outbox
from bot.transports.telegram import limits
from bot.transports.telegram.request import ServerFailed, server_error
from bot.types import Outgoing, Queued
from tests.fakes.telegram_server import TOKEN, FakeTelegram
from tests.support.config import make_config
from tests.support.fake_time import FakeTime, failing
from tests.support.outbox import outbox_rows, wait_for_row
from tests.support.telegram import ADMIN

CONFIG = f"""
[deck]
default_agent = "echo"
admin_chat = "telegram:{ADMIN}"
breaker_failures = 1
[[users]]
id = "telegram:{ADMIN}"
role = "admin"
[[agents]]
name = "echo"
kind = "echo"
[[agents]]
name = "flaky"
kind = "command"
command = ["false"]
"""
NOT_ARRIVED = "may not have arrived"  # bot.delivery.outbox: the admin is asked to look


@pytest.fixture
async def fake(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeTelegram]:
    server = await FakeTelegram().start()
    monkeypatch.setenv("TG_TOKEN", TOKEN)
    yield server
    await server.stop()


def errors_config(data_dir: Path, fake: FakeTelegram) -> Config:
    text = CONFIG.replace("[deck]", f'[deck]\ndata_dir = "{data_dir}"')
    text += f'[telegram]\ntoken = "env:TG_TOKEN"\nbase_url = "{fake.base_url}"\n'
    return make_config(text)


def shown(fake: FakeTelegram, text: str) -> list[str]:
    """The messages in the admin's chat that hold `text`."""
    return [t for t in fake.sent_texts(ADMIN) if text in t]


def times(fake: FakeTelegram, text: str) -> int:
    """How often exactly `text` is in the admin's chat."""
    return fake.sent_texts(ADMIN).count(text)


def refused(fake: FakeTelegram, status: int) -> int:
    return sum(1 for c in fake.calls if c.method == "sendMessage" and c.status == status)


async def arrived(fake: FakeTelegram, text: str, timeout: float = 10) -> None:
    await fake.wait_until(lambda: bool(shown(fake, text)), timeout=timeout)


async def back(fake: FakeTelegram) -> None:
    """The deck is up and its "agentdeck started" note is out (no send is left to race)."""
    await arrived(fake, "agentdeck started")


async def test_three_500s_and_every_reply_arrives_once(fake: FakeTelegram, data_dir: Path) -> None:
    async with asyncio.timeout(60), open_deck(errors_config(data_dir, fake)) as (deck, _):
        await back(fake)
        fake.fail_next("sendMessage", status=500, times=3)
        for word in ("one", "two", "three"):
            fake.user_says(word, user=ADMIN)
        for word in ("one", "two", "three"):
            await arrived(fake, f"echo: {word}")
        await deck.tasks.drain()
        rows = await outbox_rows(deck)
    assert refused(fake, 500) == 3
    for word in ("one", "two", "three"):
        assert times(fake, f"echo: {word}") == 1
    assert not shown(fake, NOT_ARRIVED)
    assert {row.state for row in rows} == {"sent"}


async def test_a_503_page_is_an_answer_too(fake: FakeTelegram, data_dir: Path) -> None:
    async with asyncio.timeout(60), open_deck(errors_config(data_dir, fake)) as (deck, _):
        await back(fake)
        fake.gateway_next("sendMessage", status=503)  # the proxy passed nothing on
        fake.user_says("through the proxy", user=ADMIN)
        await arrived(fake, "echo: through the proxy")
        await deck.tasks.drain()
    assert refused(fake, 503) == 1
    assert times(fake, "echo: through the proxy") == 1
    assert not shown(fake, NOT_ARRIVED)


async def test_a_429_is_waited_out_and_the_reply_arrives_once(
    fake: FakeTelegram, data_dir: Path
) -> None:
    async with asyncio.timeout(60), open_deck(errors_config(data_dir, fake)) as (deck, _):
        await back(fake)
        fake.fail_next("sendMessage", status=429, retry_after=1)
        fake.user_says("patience", user=ADMIN)
        await arrived(fake, "echo: patience")
        await deck.tasks.drain()
        row = await wait_for_row(deck, "sent", "patience")
    flood = next(c for c in fake.calls if c.status == 429)
    sent = next(c for c in fake.calls_to("sendMessage") if "patience" in c.params["text"])
    assert sent.at - flood.at >= 0.95  # not before the retry_after
    assert times(fake, "echo: patience") == 1
    assert row.attempts == 1


@pytest.mark.slow
async def test_a_flood_wait_longer_than_a_send_goes_to_the_outbox_not_to_doubt(
    fake: FakeTelegram, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A send may take SEND_TIMEOUT_SECONDS (30); a shorter one here makes a 12 s flood
    # wait outlast it without a 30 s test. Nothing was sent: it must not end in doubt.
    monkeypatch.setattr(outbox, "SEND_TIMEOUT_SECONDS", 5.0)
    async with asyncio.timeout(60), open_deck(errors_config(data_dir, fake)) as (deck, _):
        await back(fake)
        fake.fail_next("sendMessage", status=429, retry_after=12)
        fake.user_says("flooded", user=ADMIN)
        await arrived(fake, "echo: flooded", timeout=30)
        await deck.tasks.drain()
        row = await wait_for_row(deck, "sent", "flooded")
    flood = next(c for c in fake.calls if c.status == 429)
    sent = next(c for c in fake.calls_to("sendMessage") if "flooded" in c.params["text"])
    assert sent.at - flood.at >= 11.95  # not before the retry_after
    assert times(fake, "echo: flooded") == 1
    assert not shown(fake, NOT_ARRIVED)
    assert row.state == "sent"


async def test_a_lost_answer_is_not_sent_twice_and_the_admin_hears_despite_a_500(
    fake: FakeTelegram, data_dir: Path
) -> None:
    async with asyncio.timeout(60), open_deck(errors_config(data_dir, fake)) as (deck, _):
        await back(fake)
        fake.lose_next("sendMessage")  # the reply is carried out, its answer lost
        fake.fail_next("sendMessage", status=500)  # and the admin notice's first attempt
        fake.user_says("maybe lost", user=ADMIN)
        row = await wait_for_row(deck, "unconfirmed", "maybe lost")
        notice = await wait_for_row(deck, "sent", NOT_ARRIVED)
        await deck.tasks.drain()
    assert times(fake, "echo: maybe lost") == 1  # never sent again
    assert refused(fake, 500) == 1
    (told,) = shown(fake, NOT_ARRIVED)
    assert "echo: maybe lost" in told
    assert (notice.key, notice.subject) == (f"unconfirmed:{row.key}", outbox.ADMIN_SUBJECT)


@pytest.mark.parametrize("status", [502, 504])
async def test_a_gateway_page_is_uncertain_and_not_sent_again(
    fake: FakeTelegram, data_dir: Path, status: int
) -> None:
    async with asyncio.timeout(60), open_deck(errors_config(data_dir, fake)) as (deck, _):
        await back(fake)
        fake.gateway_next("sendMessage", status=status, done=True)  # done behind the proxy
        fake.user_says("behind a proxy", user=ADMIN)
        await wait_for_row(deck, "unconfirmed", "behind a proxy")
        await arrived(fake, NOT_ARRIVED)
        await deck.tasks.drain()
    assert times(fake, "echo: behind a proxy") == 1
    assert refused(fake, status) == 1


async def test_the_back_note_survives_a_500_and_is_kept_under_its_key(
    fake: FakeTelegram, data_dir: Path
) -> None:
    fake.fail_next("sendMessage", status=500)  # the first message out is the note
    async with asyncio.timeout(60), open_deck(errors_config(data_dir, fake)) as (deck, _):
        await back(fake)
        note = await wait_for_row(deck, "sent", "agentdeck started")
        await deck.tasks.drain()
        rows = await outbox_rows(deck)
    assert len(shown(fake, "agentdeck started")) == 1
    assert refused(fake, 500) == 1
    assert not shown(fake, NOT_ARRIVED)
    assert [r.key for r in rows if "agentdeck started" in str(r.payload)] == [note.key]
    assert note.key.startswith("back:")
    assert note.subject == outbox.ADMIN_SUBJECT


async def test_the_breaker_notice_goes_through_the_outbox_under_its_key(
    fake: FakeTelegram, data_dir: Path
) -> None:
    async with asyncio.timeout(60), open_deck(errors_config(data_dir, fake)) as (deck, _):
        await back(fake)
        fake.fail_next("sendMessage", status=500, times=2)
        fake.user_says("/ask flaky go", user=ADMIN)
        await arrived(fake, "failed too many times in a row")
        notice = await wait_for_row(deck, "sent", "failed too many times")
        await deck.tasks.drain()
    assert len(shown(fake, "failed too many times in a row")) == 1
    assert not shown(fake, NOT_ARRIVED)
    assert notice.key.startswith("breaker:")
    assert notice.subject == outbox.ADMIN_SUBJECT


PAGE = b"<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
ANSWER = b'{"ok":false,"error_code":500,"description":"Internal Server Error"}'


@pytest.mark.parametrize(
    ("status", "body", "sent_again"),
    [
        (500, ANSWER, True),  # the Bot API says it failed
        (502, ANSWER.replace(b"500", b"502"), True),  # its answer, whatever the code
        (503, b"Service Unavailable", True),  # a server's own refusal: nothing went on
        (500, PAGE, True),
        (502, PAGE, False),  # a proxy's page: the Bot API behind it may have done it
        (504, PAGE, False),
        (504, b"", False),
        (502, b'{"error": "upstream"}', False),  # JSON, but not the Bot API's answer
    ],
)
def test_which_server_errors_are_answers(status: int, body: bytes, sent_again: bool) -> None:
    error = server_error(status, body)
    assert isinstance(error, NetworkError)
    assert isinstance(error, ServerFailed) is sent_again
    assert str(status) in error.message


async def test_a_new_message_is_sent_again_only_after_an_answered_failure() -> None:
    time = FakeTime()
    answered = failing(ServerFailed("Internal Server Error (500)"), ServerFailed("again"))
    assert await limits.retrying(answered, what="sendMessage", resend=False, sleep=time.sleep)
    assert time.slept == [0.25, 0.5]
    with pytest.raises(NetworkError):  # a lost answer: maybe sent
        await limits.retrying(failing(NetworkError("reset")), what="x", resend=False)


async def test_a_flood_wait_past_the_patience_is_raised_not_slept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PTB_TIMEDELTA", "true")
    time = FakeTime()
    with pytest.raises(RetryAfter):
        await limits.retrying(failing(RetryAfter(12)), what="x", sleep=time.sleep, patience=10)
    assert time.slept == []


REFUSED_NOTICE = "was refused"  # bot.delivery.outbox: the admin hears of a refused message


@pytest.mark.parametrize(
    ("description", "times_refused"),
    [
        ("Bad Request: chat not found", 1),
        # the HTML refused, then the same text plain: nothing Telegram would take
        ("Bad Request: can't parse entities: unsupported start tag", 2),
    ],
    ids=["chat-not-found", "entities-after-fallback"],
)
async def test_a_400_is_a_refusal_not_retried_and_the_admin_is_told_once(
    fake: FakeTelegram, data_dir: Path, description: str, times_refused: int
) -> None:
    async with asyncio.timeout(60), open_deck(errors_config(data_dir, fake)) as (deck, _):
        await back(fake)
        fake.fail_next("sendMessage", status=400, description=description, times=times_refused)
        fake.user_says("refused-words", user=ADMIN)
        row = await wait_for_row(deck, "undelivered", "refused-words")
        await arrived(fake, REFUSED_NOTICE)
        await deck.tasks.drain()
        assert deck.outbox is not None
        assert await deck.outbox.pump(backoff_over=True) == 0  # nothing left to try
        await deck.tasks.drain()
    assert row.attempts == 1
    assert "Refused" in (row.last_error or "")
    assert refused(fake, 400) == times_refused
    assert not shown(fake, "refused-words")
    assert len(shown(fake, REFUSED_NOTICE)) == 1
    assert not shown(fake, NOT_ARRIVED)


async def test_a_long_answer_cut_after_its_first_part_sends_only_the_rest(
    fake: FakeTelegram, data_dir: Path
) -> None:
    """Three parts; the second is refused (a 500, every retry of it): after a restart the
    outbox sends parts 2 and 3, never part 1 again. Counted at the fake Bot API."""
    numbers = [str(n) for n in range(1, 2501)]  # three messages' worth
    async with asyncio.timeout(60), open_deck(errors_config(data_dir, fake)) as (deck, _):
        await back(fake)
        fake.fail_next("sendMessage", status=500, times=limits.NETWORK_ATTEMPTS, after=1)
        assert deck.outbox is not None
        sent = await deck.outbox.send(Outgoing.plain(f"telegram:{ADMIN}", "\n".join(numbers)))
        assert isinstance(sent, Queued)
        assert refused(fake, 500) == limits.NETWORK_ATTEMPTS
        await wait_for_row(deck, "pending", "2500")
    async with asyncio.timeout(60), open_deck(errors_config(data_dir, fake)) as (deck, _):
        row = await wait_for_row(deck, "sent", "2500")
    parts = [t for t in fake.sent_texts(ADMIN) if t.strip().split("\n")[-1].isdigit()]
    assert len(parts) == 3
    assert "\n".join(parts).split() == numbers  # each part once, in order
    (first,) = [mid for (_, mid), m in fake.messages.items() if m["text"] == parts[0]]
    assert row.message_id == str(first)  # the answer is its first part, for edits
