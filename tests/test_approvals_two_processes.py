"""Two decks on one PostgreSQL database (team mode), one chat platform: a card posted by
one is decided on the other before the first has stored where its card is. The outcome
must still reach the card.

The platform shows a card as soon as the bot's send reaches it, and its answer (the
message id) comes back a moment later; a fast approver's press can land, on the other
process, in between. That process cannot know the card yet; the one that posted it learns
of the decision once it has stored the card's place, and edits it itself.
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from bot.app import open_deck
from bot.types import MessageRef, Outgoing
from storage.models import ApprovalState
from tests.fakes.chat import ChatRecorder
from tests.support.approvals import approval_id, gated
from tests.support.config import make_config
from tests.support.waiting import eventually


class SlowAnswers(ChatRecorder):
    """The platform as the deck that asks sees it: a card shows at once, and the answer to
    its send is held until `answer` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.answer = asyncio.Event()

    async def send(self, message: Outgoing) -> MessageRef:
        ref = await super().send(message)
        if "Approval needed" in self.posted[-1].text:
            await self.answer.wait()
        return ref


async def test_a_card_decided_elsewhere_before_its_place_was_stored_still_shows_it(
    pg_url: str,
) -> None:
    config = make_config(
        gated().replace("[[users]]", f'[deck]\ndatabase_url = "{pg_url}"\n[[users]]', 1)
    )
    asking, pressing = SlowAnswers(), ChatRecorder()
    pressing.share_platform_with(asking)
    async with AsyncExitStack() as stack:
        await stack.enter_async_context(asyncio.timeout(60))
        first, _ = await stack.enter_async_context(open_deck(config, transports=[asking]))
        await stack.enter_async_context(open_deck(config, transports=[pressing]))
        await asking.say("/ask deploy v3", user="test:ada")
        card = await asking.wait_for("Approval needed")
        await pressing.press(f"{approval_id(card)}:approve", user="test:bob")
        decided = await eventually(lambda: pressing.press_answers)
        assert decided == [("Approved.", False)]
        stored = await first.approvals.get(approval_id(card))
        assert stored is not None
        assert stored.status == ApprovalState.APPROVED
        assert "Approved by" not in card.text  # the deciding deck did not know the card
        asking.answer.set()
        await eventually(lambda: "Approved by test:bob" in card.text)
        await asking.wait_for("deploy\nv3")
