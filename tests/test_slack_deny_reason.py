"""Deny with reason on Slack (#20 point 3): the press opens a modal (`views.open` with its
trigger); the modal's answer, the text alone, is the reason; closing it is Cancel. Through
the real bolt app in HTTP mode, with payloads signed as Slack signs them.

Attacks first: someone else submitting the decider's form, a stranger of another
workspace submitting it, a command typed as the reason, a thread message after the press
(once the reason, with the agent's name glued in front).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlmodel import select

from bot.deck import Deck
from storage.models import Approval, AuditEvent
from tests.fakes.slack_server import (
    FakeSlack,
    Message,
    view_closed_body,
    view_submission_body,
)
from tests.support.slack import CONFIG, Slack, slack_deck

TWO_ADMINS = CONFIG + '\n[[users]]\nid = "slack:UADMIN2"\nrole = "admin"\n'
FORM = "application/x-www-form-urlencoded"


async def press_deny_with_reason(fake: FakeSlack, slack: Slack) -> tuple[Message, dict[str, Any]]:
    """Ask for a gated command, press "Deny with reason" as UADMIN: the card and the modal."""
    await slack.mention("@shell echo deploy")
    card = await fake.wait_for_text("Approval needed")
    await slack.press(card, "Deny with reason", user="UADMIN")
    view: dict[str, Any] = await fake.wait_for(lambda f: f.views[-1] if f.views else None)
    await fake.wait_for(lambda f: "Waiting for a reason from" in card.shown)
    return card, view


async def submit(slack: Slack, view: dict[str, Any], text: str, **who: str) -> Any:
    body = view_submission_body(view, values={"answer": {"text": text}}, **who)  # type: ignore[arg-type]
    resp = await slack.post(body, FORM)
    assert resp.status == 200
    return await resp.json() if resp.content_length else None


async def approval_of(deck: Deck) -> Any:
    pending: Sequence[Approval | None] = await deck.approvals.pending()
    (row,) = pending or [None]
    return row


async def test_the_modal_asks_and_its_text_alone_is_the_reason(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (deck, slack):
        card, view = await press_deny_with_reason(fake_slack, slack)
        (call,) = fake_slack.called("views.open")
        assert call.args["trigger_id"].startswith("T")
        assert view["callback_id"] == "agentdeck-form"
        assert view["notify_on_close"] is True
        assert "Waiting for a reason from <@UADMIN>…" in card.shown
        assert "Cancel" in [b["text"]["text"] for b in card.buttons]
        approval = await approval_of(deck)
        await submit(slack, view, "  not on a Friday ", user="UADMIN")
        await fake_slack.wait_for(lambda f: "Denied by <@UADMIN>" in card.shown)
        row = await deck.approvals.get(approval.id)
        assert row is not None
        assert row.reason == "not on a Friday"


async def test_someone_elses_submission_is_not_the_reason(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack, TWO_ADMINS) as (deck, slack):
        card, view = await press_deny_with_reason(fake_slack, slack)
        approval = await approval_of(deck)
        await submit(slack, view, "hijacked", user="UADMIN2")
        await fake_slack.wait_for(lambda f: f.called("chat.postEphemeral"))
        await deck.tasks.drain()
        row = await deck.approvals.get(approval.id)
        assert row is not None
        assert (row.status, row.reason) == ("pending", None)
        assert "hijacked" not in json.dumps([m.shown for m in fake_slack.messages.values()])
        await submit(slack, view, "the real one", user="UADMIN")
        await fake_slack.wait_for(lambda f: "Denied by <@UADMIN>" in card.shown)


async def test_a_stranger_of_another_workspace_cannot_submit_it(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (deck, slack):
        _card, view = await press_deny_with_reason(fake_slack, slack)
        approval = await approval_of(deck)
        await submit(slack, view, "from outside", user="UEVIL", team="TOTHER")
        await submit(slack, view, "from outside", user="UADMIN", team="TOTHER")
        await deck.runner.flush()
        async with deck.db.session() as session:
            audited = [e.action for e in (await session.exec(select(AuditEvent))).all()]
        assert "refused.outsider" in audited
        row = await deck.approvals.get(approval.id)
        assert row is not None
        assert row.status == "pending"


async def test_a_command_typed_as_the_reason_is_refused_in_the_modal(
    fake_slack: FakeSlack,
) -> None:
    async with slack_deck(fake_slack) as (deck, slack):
        card, view = await press_deny_with_reason(fake_slack, slack)
        answer = await submit(slack, view, "/secret set API_KEY hunter2", user="UADMIN")
        assert answer["response_action"] == "errors"
        assert "not a command" in answer["errors"]["answer"]
        approval = await approval_of(deck)
        assert approval is not None  # still pending, the wait goes on
        assert deck.vault.get("API_KEY") is None
        await submit(slack, view, "then a reason", user="UADMIN")
        await fake_slack.wait_for(lambda f: "then a reason" in card.shown)


async def test_closing_the_modal_cancels_and_a_thread_message_is_no_reason(
    fake_slack: FakeSlack,
) -> None:
    async with slack_deck(fake_slack) as (deck, slack):
        card, view = await press_deny_with_reason(fake_slack, slack)
        approval = await approval_of(deck)
        await slack.mention("not a reason", user="UADMIN", thread_ts=card.thread_ts)
        await fake_slack.wait_for(  # the thread's agent got it: a second card for its command
            lambda f: len([m for m in f.messages.values() if "Approval needed" in m.shown]) == 2
        )
        resp = await slack.post(view_closed_body(view, user="UADMIN"), FORM)
        assert resp.status == 200
        await fake_slack.wait_for(lambda f: "Waiting for a reason" not in card.shown)
        await submit(slack, view, "too late", user="UADMIN")  # the form was closed
        await fake_slack.wait_for(lambda f: f.called("chat.postEphemeral"))
        row = await deck.approvals.get(approval.id)
        assert row is not None
        assert (row.status, row.reason) == ("pending", None)


async def test_a_modal_that_cannot_open_says_what_else_works(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (deck, slack):
        fake_slack.triggers_expire = True
        await slack.mention("@shell echo deploy")
        card = await fake_slack.wait_for_text("Approval needed")
        await slack.press(card, "Deny with reason", user="UADMIN")
        (told,) = await fake_slack.wait_for(lambda f: f.called("chat.postEphemeral"))
        assert "/deck deny" in told.args["text"]
        await deck.tasks.drain()
        assert "Waiting for a reason" not in card.shown
        assert await approval_of(deck) is not None  # still open: its buttons still work
