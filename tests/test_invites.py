"""Invites (#20 point 7) through the fake Telegram server: `/invite` makes a one-time code,
`/start <code>` adds a stranger with its role; `/users` lists and removes them.

Attacks first: a stranger guessing codes (refused, then rate-limited even with the right
code), a used or expired code, an operator asking for an admin invite, an invite made in
a group, a code that outlives its maker's admin role. The code is never stored: only its
hash, and neither the inbox nor the audit log holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlmodel import select

from bot.app import open_deck
from bot.config import Role
from bot.deck import Deck
from bot.invites import USER_TRIES
from storage.clock import FakeClock
from storage.db import Database
from storage.invites import InviteStore, code_hash
from storage.models import AuditEvent, InboxItem, Invite
from tests.fakes.telegram_server import FakeTelegram
from tests.support.config import make_config

ADMIN, OPERATOR, NEWCOMER, GUESSER = 1001, 1002, 2001, 2002
GROUP = -100777
CONFIG = f"""
[deck]
default_agent = "echo"
[telegram]
token = "env:TG_TOKEN"
base_url = "BASE_URL"
[[users]]
id = "telegram:{ADMIN}"
role = "admin"
name = "Ada"
[[users]]
id = "telegram:{OPERATOR}"
role = "operator"
[[agents]]
name = "echo"
kind = "echo"
"""


@pytest.fixture
async def fake_telegram(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FakeTelegram]:
    server = await FakeTelegram().start()
    monkeypatch.setenv("TG_TOKEN", server.token)
    yield server
    await server.stop()


@contextlib.asynccontextmanager
async def running(fake: FakeTelegram, clock: FakeClock | None = None) -> AsyncIterator[Deck]:
    config = make_config(CONFIG.replace("BASE_URL", fake.base_url))
    async with asyncio.timeout(30), open_deck(config, clock=clock) as (deck, _):
        yield deck


async def answer(fake: FakeTelegram, chat: int, needle: str) -> str:
    """The newest message to `chat` holding `needle`, once it came."""
    await fake.wait_until(lambda: any(needle in t for t in fake.sent_texts(chat)))
    return [t for t in fake.sent_texts(chat) if needle in t][-1]


async def make_invite(fake: FakeTelegram, role: str = "operator", hours: str = "") -> str:
    before = len(fake.sent_texts(ADMIN))
    fake.user_says(f"/invite {role} {hours}".strip(), user=ADMIN)
    await fake.wait_until(lambda: len(fake.sent_texts(ADMIN)) > before)
    text = fake.sent_texts(ADMIN)[-1]
    found = re.search(r"/start ([a-z0-9-]+)", text)
    assert found, text
    return found[1]


async def test_a_stranger_guessing_codes_is_refused_then_slowed_even_with_the_right_code(
    fake_telegram: FakeTelegram,
) -> None:
    async with running(fake_telegram) as deck:
        code = await make_invite(fake_telegram)
        for n in range(USER_TRIES):
            fake_telegram.user_says(f"/start aaaa-bbbb-cccc-{n:04d}", user=GUESSER)
            await fake_telegram.wait_until(
                lambda n=n: len(fake_telegram.sent_texts(GUESSER)) > n  # type: ignore[misc]
            )
        assert all("does not work" in t for t in fake_telegram.sent_texts(GUESSER))
        fake_telegram.user_says(f"/start {code}", user=GUESSER)
        await answer(fake_telegram, GUESSER, "Too many wrong codes")
        assert deck.access.role(f"telegram:{GUESSER}") is None
        # the code still works for the one it was made for
        fake_telegram.user_says(f"/start {code}", user=NEWCOMER)
        await answer(fake_telegram, NEWCOMER, "You were added as operator (invited by Ada")


async def test_a_code_works_once_and_the_person_is_listed_then_removed(
    fake_telegram: FakeTelegram,
) -> None:
    async with running(fake_telegram) as deck:
        code = await make_invite(fake_telegram, "operator", "2")
        fake_telegram.user_says("hello", user=NEWCOMER)
        await answer(fake_telegram, NEWCOMER, f"your id is telegram:{NEWCOMER}")
        fake_telegram.user_says(f"/start {code.upper()}", user=NEWCOMER)  # as typed from a phone
        joined = await answer(fake_telegram, NEWCOMER, "You were added as operator (invited by Ada")
        assert "Agents you may use: echo" in joined
        fake_telegram.user_says("hi there", user=NEWCOMER)
        await answer(fake_telegram, NEWCOMER, "echo: hi there")

        fake_telegram.user_says(f"/start {code}", user=GUESSER)  # the same code again
        await answer(fake_telegram, GUESSER, "does not work")
        assert deck.access.role(f"telegram:{GUESSER}") is None

        fake_telegram.user_says("/users", user=ADMIN)
        listing = await answer(fake_telegram, ADMIN, "Added by invite")
        assert f"telegram:{NEWCOMER}: operator (invited by Ada (telegram:{ADMIN})" in listing
        assert f"Ada (telegram:{ADMIN}): admin" in listing

        fake_telegram.user_says(f"/users remove telegram:{OPERATOR}", user=ADMIN)
        await answer(fake_telegram, ADMIN, "listed in the config")
        fake_telegram.user_says(f"/users remove telegram:{NEWCOMER}", user=ADMIN)
        await answer(fake_telegram, ADMIN, f"Removed telegram:{NEWCOMER}")
        assert deck.access.role(f"telegram:{NEWCOMER}") is None
        await deck.runner.flush()
        async with deck.db.session() as session:
            actions = [e.action for e in (await session.exec(select(AuditEvent))).all()]
            stored = repr((await session.exec(select(InboxItem))).all())
            stored += repr((await session.exec(select(AuditEvent))).all())
            invites = (await session.exec(select(Invite))).all()
    assert {"invite.created", "invite.used", "invite.refused", "user.removed"} <= set(actions)
    assert code not in stored
    assert code.upper() not in stored
    assert [i.id for i in invites] == [code_hash(code)]


async def test_an_expired_code_does_not_work(fake_telegram: FakeTelegram) -> None:
    clock = FakeClock()
    async with running(fake_telegram, clock) as deck:
        code = await make_invite(fake_telegram, "viewer", "1")
        clock.advance(timedelta(hours=1, seconds=1))
        fake_telegram.user_says(f"/start {code}", user=NEWCOMER)
        await answer(fake_telegram, NEWCOMER, "does not work")
        assert deck.access.role(f"telegram:{NEWCOMER}") is None
        await deck.invites.prune()
        async with deck.db.session() as session:
            assert len((await session.exec(select(Invite))).all()) == 1  # kept a while
        clock.advance(timedelta(days=8))
        await deck.invites.prune()
        async with deck.db.session() as session:
            assert (await session.exec(select(Invite))).all() == []


async def test_an_operator_cannot_invite_and_nobody_invites_in_a_group(
    fake_telegram: FakeTelegram,
) -> None:
    async with running(fake_telegram) as deck:
        fake_telegram.user_says("/invite admin", user=OPERATOR)
        await answer(fake_telegram, OPERATOR, "You need the admin role")
        fake_telegram.user_says("/invite operator", user=ADMIN, chat=GROUP)
        said = await answer(fake_telegram, GROUP, "private chat")
        assert "/start" not in said
        fake_telegram.user_says("/invite owner", user=ADMIN)
        await answer(fake_telegram, ADMIN, "No role 'owner'")
        fake_telegram.user_says("/invite viewer 1000", user=ADMIN)
        await answer(fake_telegram, ADMIN, "Hours must be")
        assert await deck.invites.open_codes() == 0


async def test_a_code_stops_working_when_its_maker_is_no_longer_an_admin(
    fake_telegram: FakeTelegram,
) -> None:
    async with running(fake_telegram) as deck:
        code = await make_invite(fake_telegram, "admin")
        demoted = make_config(
            CONFIG.replace("BASE_URL", fake_telegram.base_url).replace(
                'role = "admin"', 'role = "operator"'
            )
        )
        deck.access.replace(demoted.users, console_user="console:local")
        fake_telegram.user_says(f"/start {code}", user=NEWCOMER)
        await answer(fake_telegram, NEWCOMER, "does not work")
        assert deck.access.role(f"telegram:{NEWCOMER}") is None
        deck.access.replace(deck.config.users, console_user="console:local")
        fake_telegram.user_says(f"/start {code}", user=NEWCOMER)  # left as it was: works now
        await answer(fake_telegram, NEWCOMER, "You were added as admin")
        assert deck.access.role(f"telegram:{NEWCOMER}") is Role.ADMIN


async def test_someone_in_the_config_keeps_their_role_and_the_code(
    fake_telegram: FakeTelegram,
) -> None:
    async with running(fake_telegram) as deck:
        code = await make_invite(fake_telegram, "admin")
        fake_telegram.user_says(f"/start {code}", user=OPERATOR)
        await answer(fake_telegram, OPERATOR, "already in the config as operator")
        assert deck.access.role(f"telegram:{OPERATOR}") is Role.OPERATOR
        assert await deck.invites.open_codes() == 1


async def test_two_people_redeeming_one_code_at_once_one_wins(db: Database) -> None:
    """On SQLite and PostgreSQL: the claim is one compare-and-set, so a code works once."""
    from datetime import UTC, datetime

    store = InviteStore(db)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    code = await store.create("operator", "telegram:1", now, now + timedelta(hours=1))
    results = await asyncio.gather(
        *(
            store.redeem(code, f"telegram:{n}", now, may_grant=lambda _r, _b: True)
            for n in range(100, 110)
        )
    )
    assert len([r for r in results if r is not None]) == 1
    (person,) = await store.users()
    assert person.role == "operator"
    assert await store.redeem(code.upper(), "telegram:999", now, may_grant=lambda *_: True) is None
