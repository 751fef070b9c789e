"""Approving a destructive action on the dashboard takes a second, confirming post.

Destructive: a command agent with `approval = "always"`. The first Approve shows a
confirmation page and decides nothing; the confirming post names the exact action
(a prefix of its hash) and carries the session's CSRF token. The command runs once.
"""

from __future__ import annotations

import re
from pathlib import Path

from bot.runs.destructive import is_destructive
from roster.agent import Action
from storage.models import ApprovalState
from tests.support.dashkit import Dash, csrf_of, dashboard_config, dashboard_deck, page

CONFIRM = re.compile(r'name="confirm" value="([0-9a-f]{16})"')
CARD_ID = re.compile(r"\(([0-9a-f]{8})\)")


def agents(ledger: Path) -> str:
    return f"""
[[agents]]
name = "wipe"
kind = "command"
command = ["sh", "-c", "echo \\"$0\\" >> {ledger}; echo wiped $0", "{{input}}"]
approval = "always"
approvers = ["test:ada"]
[[agents]]
name = "tidy"
kind = "command"
command = ["sh", "-c", "echo \\"$0\\" >> {ledger}; echo tidied $0", "{{input}}"]
approval = "rules"
allow = [["sh", "-c", "never"]]
approvers = ["test:ada"]
"""


async def ask(dash: Dash, text: str) -> str:
    """Bob asks in a chat of its own for this request; the id on the card it gets."""
    chat = f"test:room-{len(dash.chat.posted)}"
    await dash.chat.say(text, user="test:bob", chat=chat)
    card = await dash.chat.wait_for("Approval needed", chat=chat)
    found = CARD_ID.search(card.text)
    assert found, card.text
    return found[1]


def runs_of(ledger: Path) -> list[str]:
    return ledger.read_text().splitlines() if ledger.exists() else []


async def test_approving_a_destructive_action_asks_to_confirm_it(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    async with dashboard_deck(dashboard_config(agents(ledger))) as dash:
        approval_id = await ask(dash, "/ask wipe disk1")
        async with dash.signed_in("test:ada") as client:
            body = await page(client, "/approvals")
            assert f'id="destructive-{approval_id}"' in body
            asked = await client.post(
                f"/approvals/{approval_id}", data={"csrf": csrf_of(body), "choice": "approve"}
            )
            shown = await asked.text()
            assert asked.status == 200
            assert "Approve this destructive action?" in shown
            assert runs_of(ledger) == []
            confirm = CONFIRM.search(shown)
            assert confirm
            pending = await dash.deck.approvals.get(approval_id)
            assert pending is not None
            assert pending.status == ApprovalState.PENDING
            assert confirm[1] == pending.action_hash[:16]
            # a confirmation of something else, or without the form token, decides nothing
            wrong = await client.post(
                f"/approvals/{approval_id}",
                data={"csrf": csrf_of(body), "choice": "approve", "confirm": "0" * 16},
            )
            assert "Approve this destructive action?" in await wrong.text()
            forged = await client.post(
                f"/approvals/{approval_id}", data={"choice": "approve", "confirm": confirm[1]}
            )
            assert forged.status == 403
            still = await dash.deck.approvals.get(approval_id)
            assert still is not None
            assert still.status == ApprovalState.PENDING
            assert runs_of(ledger) == []
            done = await client.post(
                f"/approvals/{approval_id}",
                data={"csrf": csrf_of(shown), "choice": "approve", "confirm": confirm[1]},
            )
            assert "Approved." in await done.text()
            await dash.chat.wait_for("wiped disk1")
            again = await client.post(
                f"/approvals/{approval_id}",
                data={"csrf": csrf_of(shown), "choice": "approve", "confirm": confirm[1]},
            )
            assert "already decided" in await again.text()
        assert runs_of(ledger) == ["disk1"]  # exactly once
        actions = [e.action for e in await dash.deck.audit.tail(200)]
        assert "dashboard.confirm_asked" in actions


async def test_deny_and_other_approvals_need_no_confirmation(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    async with dashboard_deck(dashboard_config(agents(ledger))) as dash:
        tidy_id = await ask(dash, "/ask tidy room")
        wipe_id = await ask(dash, "/ask wipe disk2")
        async with dash.signed_in("test:ada") as client:
            body = await page(client, "/approvals")
            assert f'id="destructive-{tidy_id}"' not in body
            approved = await client.post(
                f"/approvals/{tidy_id}", data={"csrf": csrf_of(body), "choice": "approve"}
            )
            assert "Approved." in await approved.text()
            denied = await client.post(
                f"/approvals/{wipe_id}", data={"csrf": csrf_of(body), "choice": "deny"}
            )
            assert "Denied." in await denied.text()
            await dash.chat.wait_for("tidied room")
        assert runs_of(ledger) == ["room"]


async def test_the_destructive_mark_and_its_hook_for_tools(tmp_path: Path) -> None:
    async with dashboard_deck(dashboard_config(agents(tmp_path / "ledger"))) as dash:
        roster = dash.deck.roster
        wipe = Action(agent="wipe", kind="command", argv=("sh",))
        tidy = Action(agent="tidy", kind="command", argv=("sh",))
        gone = Action(agent="removed", kind="command", argv=("rm",))
        tool = Action(agent="writer", kind="tool", tool="fs.delete")
        assert is_destructive(wipe, roster)
        assert not is_destructive(tidy, roster)
        assert is_destructive(gone, roster)  # its agent was removed: one click too many is fine
        assert not is_destructive(tool, roster)
        assert is_destructive(tool, roster, [lambda action: action.tool == "fs.delete"])
