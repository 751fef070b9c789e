"""Slack shows Slack forms (#20 point 5): `/deck help` and every hint name commands as
they are typed in Slack (`/deck agents`, `/deck pause <id>`), and a message's plain-text
fallback (the notification) keeps its parts apart. Through the real bolt app against the
fake Slack; the same hints on Telegram keep `/agents`.
"""

from __future__ import annotations

import re

from bot.text import pre, rich
from bot.transports.slack.render import chat_command, fallback
from tests.fakes.slack_server import FakeSlack
from tests.support.slack import replies, slack_deck

KNOWN = {"agents", "pause", "help", "ask", "jobs"}


async def test_deck_help_lists_every_command_in_slack_form(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (_deck, slack):
        await slack.command("help", user="UADMIN")
        opened = await fake_slack.wait_for_text("`/deck help`")
        (listing,) = await fake_slack.wait_for(
            lambda f: [t for t in replies(f, "C1", opened.ts) if "Commands" in t]
        )
        assert "`/deck agents`" in listing
        assert "`/deck pause &lt;id&gt;`" in listing
        assert "/deck ask picks another" in listing
        bare = re.findall(r"(?<![\w/])/(?!deck\b)[a-z]+", listing)
        assert bare == [], f"commands not in Slack form: {bare}"


async def test_a_usage_hint_says_deck_pause(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (_deck, slack):
        await slack.command("pause", user="UADMIN")
        hint = await fake_slack.wait_for_text("Usage:")
        assert "Usage: /deck pause &lt;id&gt;. /deck jobs lists them." in hint.shown
        assert "Usage: /deck pause" in hint.text  # the fallback too


async def test_agent_output_paths_are_left_as_written(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (_deck, slack):
        await slack.mention("cat /etc/hosts and /tmp/agents/x")
        answer = await fake_slack.wait_for_text("echo*:")
        assert "cat /etc/hosts and /tmp/agents/x" in answer.shown


async def test_the_fallback_keeps_a_space_between_parts(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (_deck, slack):
        await slack.mention("@shell echo deploy")
        card = await fake_slack.wait_for_text("Approval needed")
        assert "'echo deploy' Expires" in card.text, card.text
        assert "'Expires" not in card.text


def test_chat_command_changes_our_commands_only() -> None:
    said = "Usage: /pause <id>. /jobs lists them; see /etc/pause and a/help and /help/x."
    assert chat_command(said, "/deck", KNOWN) == (
        "Usage: /deck pause <id>. /deck jobs lists them; see /etc/pause and a/help and /help/x."
    )
    assert chat_command("/nosuch and (/agents)", "/ops", KNOWN) == "/nosuch and (/ops agents)"
    assert fallback(rich("to run:", pre("ls"), "Preview:", pre("x"), "done")) == (
        "to run: ls Preview: x done"
    )
