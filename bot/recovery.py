"""At start: what the last process left is picked up, and the admin chat hears of it.

Interrupted runs are reported, approval cards a crash lost are posted again, decisions
taken just before a stop are carried out, and updates received but never handled are
handled now; then one note says so ("agentdeck started" on a new deck). Logs as
`bot.app`, where these lines were written before they moved here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket

from bot.deck import Deck
from bot.delivery.outbox import ADMIN_SUBJECT
from bot.intake import actions
from bot.intake.dispatcher import Dispatcher
from bot.runs import interrupted
from bot.runs.interrupted import Cut
from bot.triggers.service import Triggers
from bot.types import Incoming, Outgoing
from storage.inbox import Inbox

log = logging.getLogger("bot.app")  # the name the JSON log and the error counter know


async def recover(
    deck: Deck,
    dispatcher: Dispatcher,
    inbox: Inbox,
    cut: list[Cut],
    triggers: Triggers | None = None,
) -> None:
    """Pick up what the last process left: interrupted runs, lost cards, unhandled updates,
    webhook deliveries stored but not started."""
    await deck.outbox.start_delivering()  # messages a crash left undelivered go first
    reported = await interrupted.report(cut, postman=deck.postman, approvals=deck.approvals)
    # Counted before the cards go out again: a press right after is not "waiting" then.
    pending = len(await deck.approvals.pending()) - len(reported)
    cards = await repost_lost_cards(deck, skip=reported)
    resumed = await actions.resume_decided(deck)
    unhandled = await inbox.take_over()
    for item in unhandled:
        await dispatcher.handle(Incoming.from_json(item.payload))
    if triggers is not None:
        await triggers.resume_unstarted()
    if deck.db.created:  # a new deck: nothing was left to pick up
        note = "agentdeck started. Send /start in a chat to see who may do what."
    else:
        note = (
            f"agentdeck is back. Interrupted runs: {interrupted.describe(cut)};"
            f" approvals waiting: {pending}"
            f" ({cards} card(s) posted again); updates handled again: {len(unhandled)}."
        )
    if resumed:
        note += f" Decisions carried out now (taken just before the stop): {resumed}."
    log.info(note)
    admin = deck.config.deck.admin_chat
    if admin and deck.postman.knows(admin):
        with contextlib.suppress(Exception):
            await deck.postman.keep(
                back_key(deck), Outgoing.plain(admin, note), subject=ADMIN_SUBJECT
            )


def back_key(deck: Deck) -> str:
    """The "agentdeck is back" note's key: one per start of one process."""
    return f"back:{socket.gethostname()}:{os.getpid()}:{deck.started_at.isoformat()}"


async def repost_lost_cards(deck: Deck, *, skip: set[str] | frozenset[str] = frozenset()) -> int:
    """Post pending cards again where they were lost (the console forgets its prompts);
    `skip`: cards posted a moment ago (a run's report with its Run again button)."""
    posted = 0
    for approval in await deck.approvals.pending():
        if approval.id in skip:
            continue
        lost = not approval.card.get("copies") or approval.chat_id.startswith("console:")
        if lost and deck.postman.knows(approval.chat_id):
            await deck.approvals.post_card(approval)
            posted += 1
    return posted
