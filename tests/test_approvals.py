"""Approvals and brakes: quorum, self-approval, escalation, expiry, grants, budgets, breaker."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from bot.intake import actions
from storage.approvals import ApprovalStore
from storage.clock import FakeClock
from storage.models import ApprovalState, Run, RunState
from tests.fakes.openai_server import FakeOpenAI
from tests.support.approvals import USERS, approval_id, gated
from tests.support.config import make_config
from tests.support.decks import audit_actions, chat_deck


async def test_quorum_of_two_distinct_approvers() -> None:
    async with chat_deck(make_config(gated("quorum = 2"))) as (_deck, chat):
        await chat.say("/ask deploy v2", user="test:ada")
        card = await chat.wait_for("Approval needed")
        assert "Needs 2 approvers (0 so far)" in card.text
        await chat.press(f"{approval_id(card)}:approve", user="test:bob")
        await chat.wait_for("(1 so far)")
        await chat.press(f"{approval_id(card)}:approve", user="test:bob")
        await chat.press(f"{approval_id(card)}:approve", user="test:admin")
        await chat.wait_for("Approved by test:bob, test:admin")
        await chat.wait_for("deploy\nv2")
    assert chat.press_answers[:2] == [
        ("Vote counted: 1 of 2.", False),
        ("You approved this already; it needs another approver.", True),
    ]


async def test_self_approval_refused_when_the_policy_says_so() -> None:
    async with chat_deck(make_config(gated("self_approval = false"))) as (deck, chat):
        await chat.say("/ask deploy prod", user="test:ada")
        card = await chat.wait_for("The requester cannot approve it.")
        await chat.press(f"{approval_id(card)}:approve", user="test:ada")
        await deck.tasks.drain()
        assert chat.press_answers[-1] == (
            "You asked for this; someone else has to approve it.",
            True,
        )
        await chat.press(f"{approval_id(card)}:approve", user="test:bob")
        await chat.wait_for("deploy\nprod")
        assert "approval.refused" in await audit_actions(deck)


async def test_strangers_viewers_doubles_and_forgeries_change_nothing() -> None:
    async with chat_deck(make_config(gated())) as (deck, chat):
        await chat.say("/ask deploy x")
        card = await chat.wait_for("Approval needed")
        aid = approval_id(card)
        for value, user in (
            (f"{aid}:approve", "test:viewer"),
            ("deadbeef:approve", "test:admin"),
            (f"{aid}:explode", "test:admin"),
            (f"{aid}:deny", "test:stranger"),
        ):
            await chat.press(value, user=user)
            await deck.tasks.drain()
        await chat.press(f"{aid}:approve")
        await chat.wait_for("deploy\nx")
        await chat.press(f"{aid}:deny", user="test:bob")
        await deck.tasks.drain()
        actions_seen = await audit_actions(deck)
    answers = [text for text, _ in chat.press_answers]
    assert answers[0] == "You are not one of the approvers of this request."
    assert answers[1:3] == ["No such approval request."] * 2
    assert answers[-1] == f"Approval {aid} was already decided: approved."
    assert "I only work for the people listed" in chat.press_answers[3][0]
    assert actions_seen.count("approval.forged") == 2
    assert "approval.late" in actions_seen
    assert "refused.unknown_user" in actions_seen


async def test_expiry_denies_and_says_nothing_ran() -> None:
    clock = FakeClock()
    async with chat_deck(make_config(gated("expires_minutes = 30")), clock) as (deck, chat):
        await chat.say("/ask deploy late")
        aid = approval_id(await chat.wait_for("Approval needed"))
        clock.advance(timedelta(minutes=31))
        await actions.sweep_approvals(deck)
        await chat.wait_for("Expired at")
        await chat.wait_for("Denied by expiry: the request expired. Nothing ran.")
        await chat.press(f"{aid}:approve")
        await deck.tasks.drain()
    assert chat.press_answers[-1][0].endswith("was already decided: expired.")


async def test_escalation_posts_the_card_again_elsewhere() -> None:
    clock = FakeClock()
    extra = 'escalate_after_minutes = 5\nescalate_to = "test:oncall"'
    async with chat_deck(make_config(gated(extra)), clock) as (deck, chat):
        await chat.say("/ask deploy now")
        card = await chat.wait_for("Approval needed")
        await actions.sweep_approvals(deck)
        assert chat.texts("test:oncall") == []
        clock.advance(timedelta(minutes=6))
        await actions.sweep_approvals(deck)
        await actions.sweep_approvals(deck)  # once only
        copies = [p for p in chat.posted if p.message.chat == "test:oncall"]
        assert len(copies) == 1
        assert approval_id(copies[0]) == approval_id(card)
        await chat.press(f"{approval_id(card)}:approve", chat="test:oncall")
        await chat.wait_for("deploy\nnow")
        assert all("Approved by test:admin" in p.text for p in (card, copies[0]))


async def test_a_changed_action_needs_a_new_approval(data_dir: object) -> None:
    async with chat_deck(make_config(gated())) as (_deck, chat):
        await chat.say("/ask deploy v1")
        card = await chat.wait_for("Approval needed")
    changed = make_config(gated(command='["echo", "changed", "{input}"]'))
    async with chat_deck(changed) as (_deck, chat):
        await chat.press(f"{approval_id(card)}:approve")
        await chat.wait_for("The action changed since it was approved")
        fresh = await chat.wait_for("echo changed v1")
        assert approval_id(fresh) != approval_id(card)


async def test_approve_for_this_conversation_until_forget() -> None:
    async with chat_deck(make_config(gated())) as (deck, chat):
        await chat.say("/ask deploy same")
        card = await chat.wait_for("Approval needed")
        await chat.press(f"{approval_id(card)}:session")
        await chat.wait_for("(for this conversation)")
        await deck.tasks.drain()
        await chat.say("/ask deploy same")
        await deck.tasks.drain()
        assert (await audit_actions(deck)).count("approval.requested") == 1
        assert sum(t.startswith("deploy\nsame") for t in chat.texts()) == 2
        await chat.say("/ask deploy other")
        await deck.tasks.drain()
        assert (await audit_actions(deck)).count("approval.requested") == 2  # another action asks
        await chat.say("/forget")
        await chat.say("/ask deploy same")
        await deck.tasks.drain()
        seen = await audit_actions(deck)
        assert seen.count("approval.requested") == 3
        assert seen.count("approval.reused") == 1


async def test_deny_with_a_reason_from_a_button(
    fake_openai: FakeOpenAI, monkeypatch: object
) -> None:
    import os

    os.environ["TEST_OPENAI_KEY"] = "sk-test"
    from tests.fakes.openai_server import call, say

    fake_openai.script = [call("run_command", argv=["rm", "-rf", "/srv"]), say("I will not, then.")]
    config = make_config(
        USERS
        + f"""
[llm]
base_url = "{fake_openai.base_url}"
api_key = "env:TEST_OPENAI_KEY"
max_retries = 0
[[agents]]
name = "bot"
kind = "llm"
model = "m"
tools = ["run_command"]
"""
    )
    try:
        async with chat_deck(config) as (deck, chat):
            await chat.say("/ask bot clean /srv")
            card = await chat.wait_for("Approval needed")
            await chat.press(f"{approval_id(card)}:reason")
            await deck.tasks.drain()
            assert chat.press_answers[-1][0].startswith("Send the reason as your next message")
            await chat.say("never on a Friday")
            await chat.wait_for("I will not, then.")
            await chat.wait_for("Denied by test:admin")
    finally:
        del os.environ["TEST_OPENAI_KEY"]
    tool = next(m for m in fake_openai.requests[1]["messages"] if m["role"] == "tool")
    assert tool["content"].endswith("Reason: never on a Friday")


async def test_budget_pauses_work_until_an_admin_extends_it(fake_openai: FakeOpenAI) -> None:
    import os

    os.environ["TEST_OPENAI_KEY"] = "sk-test"
    config = make_config(
        USERS
        + f"""
[deck]
default_agent = "bot"
[llm]
base_url = "{fake_openai.base_url}"
api_key = "env:TEST_OPENAI_KEY"
max_retries = 0
[[agents]]
name = "bot"
kind = "llm"
model = "m"
[[budgets]]
agent = "bot"
daily_tokens = 10
"""
    )
    try:
        async with chat_deck(config) as (deck, chat):
            await chat.say("first", user="test:ada")
            await chat.wait_for("echo: first")  # 18 tokens: past the cap of 10 now
            await chat.say("second", user="test:ada")
            card = await chat.wait_for("extend_budget")
            assert "scope='agent', name='bot', tokens=10" in card.text
            await chat.press(f"{approval_id(card)}:approve", user="test:ada")  # not an admin
            await deck.tasks.drain()
            assert chat.press_answers[-1] == (
                "You are not one of the approvers of this request.",
                True,
            )
            await chat.press(f"{approval_id(card)}:approve")
            await chat.wait_for("echo: second")
    finally:
        del os.environ["TEST_OPENAI_KEY"]
    assert len(fake_openai.requests) == 2


async def test_circuit_breaker_switches_a_failing_agent_off() -> None:
    config = make_config(
        USERS
        + """
[deck]
breaker_failures = 2
admin_chat = "test:admins"
[[agents]]
name = "flaky"
kind = "command"
command = ["false"]
"""
    )
    async with chat_deck(config) as (deck, chat):
        for _ in range(2):
            await chat.say("/ask flaky go")
            await deck.tasks.drain()
        alert = await chat.wait_for("failed too many times in a row", chat="test:admins")
        assert "/enable flaky" in alert.text
        await chat.say("/ask flaky go")
        await chat.wait_for("Agent 'flaky' is unavailable: disabled from chat")
        await chat.say("/enable flaky")
        assert (await chat.wait_for("is enabled")).text == "flaky is enabled."


async def test_run_timeout_and_rate_limit() -> None:
    config = make_config(
        USERS
        + """
[deck]
rate_limit_per_minute = 3
[[agents]]
name = "sleepy"
kind = "python"
""".replace(
            'kind = "python"', 'kind = "command"\ncommand = ["sleep", "{input}"]\nrun_timeout = 0.3'
        )
    )
    async with chat_deck(config) as (deck, chat):
        await chat.say("/ask sleepy 5", user="test:ada")
        await chat.wait_for("sleepy: ran longer than 0.3 s and was stopped.")
        await deck.runner.flush()
        async with deck.db.session() as session:
            run = (await session.exec(select(Run))).one()
        assert run.status == RunState.FAILED
        for _ in range(3):
            await chat.say("/agents", user="test:ada")
        refusal = await chat.wait_for("faster than")
        assert refusal.text.startswith("You are sending messages faster than this bot accepts")


async def test_only_listed_approvers_count_even_admins() -> None:
    config = make_config(
        USERS
        + """
[[agents]]
name = "payroll"
kind = "command"
command = ["echo", "{input}"]
approval = "always"
approvers = ["test:bob"]
"""
    )
    async with chat_deck(config) as (deck, chat):
        await chat.say("/ask payroll run", user="test:ada")
        aid = approval_id(await chat.wait_for("Approval needed"))
        await chat.press(f"{aid}:approve", user="test:admin")
        await deck.tasks.drain()
        assert chat.press_answers[-1] == ("You are not one of the approvers of this request.", True)
        await chat.press(f"{aid}:approve", user="test:bob")
        result = await chat.wait_for("payroll\n")
        assert result.text.startswith("payroll\nrun"), result.text


async def test_a_decision_stored_just_before_a_crash_is_carried_out_at_the_next_start() -> None:
    """The decision is stored, then the process dies before its run resumes: the press is
    not lost (handling the press again would only find it decided)."""
    config = make_config(gated())
    async with chat_deck(config) as (deck, chat):
        await chat.say("/ask deploy shipped")
        aid = approval_id(await chat.wait_for("Approval needed"))
        now = deck.clock.now()
        stored = await ApprovalStore(deck.db).settle(
            aid, status=ApprovalState.APPROVED, decided_by="test:ada", decided_at=now
        )
        assert stored
    async with chat_deck(config) as (deck, chat):
        await chat.wait_for("deploy\nshipped")
        await deck.tasks.drain()
        await deck.runner.flush()
        async with deck.db.session() as session:
            (run,) = (await session.exec(select(Run))).all()
    assert run.status == RunState.DONE
    async with chat_deck(config) as (deck, chat):  # and only once
        await deck.tasks.drain()
    assert not any("shipped" in text for text in chat.texts())
