"""Invites on Slack (#20 point 7): `/deck invite <role>` in a direct message, `/deck start
<code>` from a newcomer, through the real bolt app against the fake Slack.

Attacks: the code is never echoed into a channel (only the newcomer sees the answer);
someone of another workspace cannot join with a valid code; an invite asked for in a
channel makes no code.
"""

from __future__ import annotations

import re

from bot.config import Role
from tests.fakes.slack_server import FakeSlack
from tests.support.slack import everything_slack_got, slack_deck


async def _invite(fake: FakeSlack, slack: object, role: str = "operator") -> str:
    await slack.command(f"invite {role}", user="UADMIN", channel="D1")  # type: ignore[attr-defined]
    message = await fake.wait_for_text("/deck start ")
    found = re.search(r"/deck start ([a-z0-9-]+)", message.shown)
    assert found, message.shown
    return found[1]


async def test_a_newcomer_joins_with_deck_start_and_the_code_stays_private(
    fake_slack: FakeSlack,
) -> None:
    async with slack_deck(fake_slack) as (deck, slack):
        code = await _invite(fake_slack, slack)
        before = len(fake_slack.called("chat.postMessage"))
        url = f"{fake_slack.url}/respond/new"
        await slack.command(f"start {code}", user="UNEW", channel="C1", response_url=url)
        (told,) = await fake_slack.wait_for(lambda f: f.responses)
        assert "You were added as operator" in told["text"]
        assert told["response_type"] == "ephemeral"
        assert deck.access.role("slack:UNEW") is Role.OPERATOR
        posted = fake_slack.called("chat.postMessage")[before:]
        assert all(code not in str(call.args) for call in posted)  # not echoed in C1


async def test_someone_of_another_workspace_cannot_join(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (deck, slack):
        code = await _invite(fake_slack, slack)
        url = f"{fake_slack.url}/respond/other"
        await slack.command(
            f"start {code}", user="UOUT", channel="C1", response_url=url, team="TOTHER"
        )
        await deck.tasks.drain()
        assert deck.access.role("slack:UOUT") is None
        assert await deck.invites.open_codes() == 1  # still there for the one it was for


async def test_an_invite_asked_for_in_a_channel_makes_no_code(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (deck, slack):
        await slack.command("invite operator", user="UADMIN", channel="C1")
        await fake_slack.wait_for_text("private chat")
        assert await deck.invites.open_codes() == 0
        assert "/deck start " not in everything_slack_got(fake_slack)
