"""The dashboard over HTTP: sign-in by link from chat, every page, every refusal.

A real deck with the dashboard on 127.0.0.1 and a `ChatRecorder` as the chat; the
client is aiohttp's, speaking plain HTTP to the real server.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import text
from sqlmodel import select

from bot.dashboard import Dashboard
from bot.dashboard.errors import DashboardStartError
from storage import history
from storage.clock import FakeClock
from storage.db import Database, sqlite_url
from storage.models import (
    ApprovalState,
    AuditEvent,
    Job,
    JobState,
    OutboxMessage,
    OutboxState,
    Run,
    RunState,
)
from storage.signin_links import UsedLinks
from tests.fakes.openai_server import FakeOpenAI, call, say
from tests.support.config import make_config
from tests.support.dashkit import (
    AGENTS,
    USERS,
    Dash,
    csrf_of,
    dashboard_config,
    dashboard_deck,
    page,
    redeem,
    status_of,
)

CONFIRM = re.compile(r'name="confirm" value="([0-9a-f]{16})"')
PAGES = ("/", "/runs", "/runs/nothing", "/jobs", "/approvals", "/audit", "/cost")


async def audit_actions(dash: Dash) -> list[str]:
    await dash.deck.runner.flush()
    async with dash.deck.db.session() as session:
        return [e.action for e in (await session.exec(select(AuditEvent))).all()]


async def run_to_end(dash: Dash, text_: str, user: str = "test:ada") -> Run:
    await dash.chat.say(text_, user=user)
    await dash.chat.wait_for("exit 0")
    await dash.deck.runner.flush()
    async with dash.deck.db.session() as session:
        run = (await session.exec(select(Run).order_by(text("started_at desc")))).first()
    assert run is not None
    return run


async def pending_card(dash: Dash, user: str = "test:bob") -> str:
    await dash.chat.say("/ask deploy v2", user=user)
    card = await dash.chat.wait_for("Approval needed")
    found = re.search(r"\(([0-9a-f]{8})\)", card.text)
    assert found, card.text
    return found[1]


# --- signing in ---------------------------------------------------------------------


async def test_a_link_from_chat_signs_in_once() -> None:
    async with dashboard_deck() as dash:
        link = await dash.link_from_chat("test:ada")
        assert "works once, within 5 minutes" in dash.chat.texts("test:ada")[-1]
        async with dash.client() as client:
            shown = await page(client, link[len(dash.base) :])
            assert "Sign in as test:ada" in shown
            response = await redeem(client, link)
            assert response.status == 303
            cookie = response.headers["Set-Cookie"]
            assert "HttpOnly" in cookie
            assert "SameSite=Strict" in cookie
            overview = await page(client, "/")
            assert "Says it back" in overview
            assert "test:ada" in overview
        async with dash.client() as other:
            again = await redeem(other, link)
            assert again.status == 403
            body = await (await other.post("/signin", data={"t": link.split("t=")[1]})).text()
            assert "used already" in body
            assert await status_of(other, "/") == 401
        actions = await audit_actions(dash)
        assert "dashboard.link" in actions
        assert "dashboard.signin" in actions
        assert "dashboard.signin_refused" in actions
        # the link itself is never stored
        async with dash.deck.db.session() as session:
            details = [
                str(e.detail) + e.subject for e in (await session.exec(select(AuditEvent))).all()
            ]
        token = link.split("t=")[1]
        assert not any(token[:40] in d for d in details)


async def test_an_expired_link_is_refused() -> None:
    clock = FakeClock()
    async with dashboard_deck(clock=clock) as dash:
        link = await dash.link_from_chat("test:ada")
        clock.advance(timedelta(minutes=5, seconds=1))
        async with dash.client() as client:
            looked = await client.get(link[len(dash.base) :])
            assert looked.status == 403
            assert "expired" in await looked.text()
            response = await redeem(client, link)
            assert response.status == 403
            assert await status_of(client, "/") == 401


async def test_a_forged_or_foreign_token_is_refused() -> None:
    async with dashboard_deck() as dash:
        link = await dash.link_from_chat("test:ada")
        token = link.split("t=")[1]
        body, _, mac = token.partition(".")
        forged = body[:-2] + ("AA" if body[-2:] != "AA" else "BB") + "." + mac
        async with dash.client() as client:
            for bad in (forged, "nonsense", "", token + "x"):
                response = await client.post("/signin", data={"t": bad})
                assert response.status == 403
                assert "not valid" in await response.text()
            # a session cookie made up by hand is no session
            client.cookie_jar.update_cookies({"agentdeck_session": token})
            assert await status_of(client, "/") == 401


async def test_without_a_session_every_page_is_only_a_sign_in_hint() -> None:
    async with dashboard_deck() as dash, dash.client() as client:
        for path in PAGES:
            body = await page(client, path, status=401)
            assert "Sign in from chat" in body
            assert "Says it back" not in body
            assert "test:ada" not in body
        for path in ("/approvals/abcd1234", "/jobs/abc123/pause", "/signout"):
            response = await client.post(path, data={"choice": "approve"})
            assert response.status == 401
        events = await client.get("/events")
        assert events.status == 401
        static = await client.get("/static/app.js")
        assert static.status == 200


async def test_the_dashboard_command_is_for_private_chats_of_operators() -> None:
    async with dashboard_deck() as dash:
        await dash.chat.say("/dashboard", user="test:ada", chat="test:team", private=False)
        assert "in a private chat" in (await dash.chat.wait_for("private chat")).text
        await dash.chat.say("/dashboard", user="test:viewer", chat="test:viewer")
        assert "operator role" in (await dash.chat.wait_for("role", chat="test:viewer")).text
        assert not any("signin" in t for t in dash.chat.texts())
        assert "dashboard.refused" in await audit_actions(dash)


async def test_the_dashboard_command_when_it_is_off(deck_with_chat) -> None:  # type: ignore[no-untyped-def]
    async with deck_with_chat(make_config(USERS + AGENTS)) as (deck, chat):
        assert not deck.postman.mints("signin")  # no dashboard started: no link is made
        await chat.say("/dashboard", user="test:ada", chat="test:ada")
        assert "switched off" in (await chat.wait_for("dashboard")).text


async def test_a_session_ends_with_its_user_and_its_time() -> None:
    clock = FakeClock()
    async with dashboard_deck(clock=clock) as dash, dash.signed_in("test:ada") as client:
        await page(client, "/")
        clock.advance(timedelta(hours=12, seconds=1))
        assert await status_of(client, "/") == 401


async def test_signing_out_needs_the_form_token() -> None:
    async with dashboard_deck() as dash, dash.signed_in("test:ada") as client:
        body = await page(client, "/")
        refused = await client.post("/signout", data={}, allow_redirects=False)
        assert refused.status == 403
        await page(client, "/")
        done = await client.post("/signout", data={"csrf": csrf_of(body)}, allow_redirects=False)
        assert done.status == 303
        assert await status_of(client, "/") == 401


# --- pages --------------------------------------------------------------------------


async def test_every_page_shows_what_happened() -> None:
    async with dashboard_deck() as dash, dash.signed_in("test:admin") as client:
        run = await run_to_end(dash, "/ask echo hello dashboard")
        overview = await page(client, "/")
        for part in ("Agents", "echo", "ready", "Transports", "test", "Next jobs", "spent today"):
            assert part in overview, part
        runs = await page(client, "/runs?agent=echo&status=done")
        assert run.id[:8] in runs
        assert "hello dashboard" in runs
        assert run.id[:8] not in await page(client, "/runs?status=failed")
        assert run.id[:8] not in await page(client, "/runs?agent=slow")
        assert run.id[:8] not in await page(client, "/runs?since=2999-01-01")
        assert run.id[:8] not in await page(client, "/runs?chat=test:elsewhere")
        assert "not a date" in await page(client, "/runs?since=yesterday", status=400)
        detail = await page(client, f"/runs/{run.id}")
        for part in ("hello dashboard", "Exit code", "Duration", "run.started", "run.done"):
            assert part in detail, part
        assert await status_of(client, "/runs/nonexistent") == 404
        assert "No jobs" in await page(client, "/jobs")
        assert "Nothing waits for approval" in await page(client, "/approvals")
        audit = await page(client, "/audit?action=run.")
        assert "chain intact" in audit
        assert "run.started" in audit
        assert "dashboard.signin" not in audit
        cost = await page(client, "/cost?days=14")
        assert "<svg" in cost
        assert "last 14 days" in cost
        for path in PAGES:
            async with client.get(path) as response:
                assert response.headers["Content-Security-Policy"].startswith("default-src 'self'")
                assert response.headers["Referrer-Policy"] == "no-referrer"


async def test_a_run_page_scrubs_secrets_stored_before_they_were_secrets() -> None:
    async with dashboard_deck() as dash, dash.signed_in("test:admin") as client:
        run = await run_to_end(dash, "/ask echo token=hunter2-but-longer")
        await dash.deck.vault.set("PW", "hunter2-but-longer", by="test:admin")
        detail = await page(client, f"/runs/{run.id}")
        assert "hunter2-but-longer" not in detail
        assert "token=" in detail


async def test_the_audit_page_is_for_admins_and_shows_a_broken_chain() -> None:
    async with dashboard_deck() as dash:
        async with dash.signed_in("test:ada") as client:
            assert "admin role" in await page(client, "/audit", status=403)
        async with dash.signed_in("test:admin") as client:
            assert "chain intact" in await page(client, "/audit")
            await dash.deck.runner.flush()
            async with dash.deck.db.engine.begin() as conn:
                await conn.execute(text("UPDATE audit_events SET actor = 'mallory' WHERE id = 2"))
            assert "chain BROKEN at row 2" in await page(client, "/audit")
            assert "mallory" in await page(client, "/audit?actor=mallory")


async def test_the_cost_page_charts_spend_per_agent_and_day() -> None:
    async with dashboard_deck() as dash, dash.signed_in("test:viewer") as client:
        now = dash.deck.clock.now()
        async with dash.deck.db.session() as session:
            for i, (agent, cost) in enumerate([("echo", 0.25), ("slow", 1.5), ("echo", 0.5)]):
                session.add(
                    Run(
                        id=f"r{i}",
                        agent=agent,
                        chat_id="test:ada",
                        user_id="test:ada",
                        cost=cost,
                        tokens_in=100,
                        started_at=now - timedelta(days=i),
                        finished_at=now - timedelta(days=i),
                        status=RunState.DONE,
                    )
                )
            await session.commit()
        body = await page(client, "/cost?days=7")
        assert body.count("<rect x=") == 3 * 2  # drawn for a desktop and for a phone
        assert "days: one of" in await page(client, "/cost?days=%C2%B2", status=400)
        assert "days: one of" in await page(client, "/cost?days=" + "9" * 5000, status=400)
        assert "$2.25" in body
        assert "slow" in body
        overview = await page(client, "/")
        assert "$0.2500" in overview  # today's spend


# --- approvals: a dashboard press is a chat press -------------------------------------


async def test_an_approver_approves_on_the_page_and_chat_hears_it() -> None:
    async with dashboard_deck() as dash:
        approval_id = await pending_card(dash)
        async with dash.signed_in("test:ada") as client:
            body = await page(client, "/approvals")
            assert "Approval needed" in body
            assert "echo &#39;deployed v2&#39;" in body  # the card, as chat shows it
            assert f'id="approve-{approval_id}"' in body
            asked = await client.post(
                f"/approvals/{approval_id}", data={"csrf": csrf_of(body), "choice": "approve"}
            )
            confirm = CONFIRM.search(await asked.text())  # deploy is destructive: confirm
            assert confirm, "no confirmation asked"
            response = await client.post(
                f"/approvals/{approval_id}",
                data={"csrf": csrf_of(body), "choice": "approve", "confirm": confirm[1]},
            )
            assert response.status == 200  # after the redirect
            shown = await response.text()
            assert "Approved." in shown
            await dash.chat.wait_for("Approved by test:ada")
            result = await dash.chat.wait_for("exit 0")
            assert "deployed v2" in result.text
        actions = await audit_actions(dash)
        assert "dashboard.press" in actions
        assert "approval.approved" in actions


async def test_a_viewer_cannot_approve() -> None:
    async with dashboard_deck() as dash:
        approval_id = await pending_card(dash)
        async with dash.signed_in("test:viewer") as client:
            body = await page(client, "/approvals")
            assert "Approval needed" in body
            assert f'id="approve-{approval_id}"' not in body
            assert "can look, not decide" in body
            response = await client.post(
                f"/approvals/{approval_id}", data={"csrf": csrf_of(body), "choice": "approve"}
            )
            assert response.status == 403
            assert "operator role" in await response.text()
        approval = await dash.deck.approvals.get(approval_id)
        assert approval is not None
        assert approval.status == ApprovalState.PENDING
        assert "dashboard.refused" in await audit_actions(dash)


async def test_a_press_without_the_form_token_changes_nothing() -> None:
    async with dashboard_deck() as dash:
        approval_id = await pending_card(dash)
        async with dash.signed_in("test:ada") as client:
            body = await page(client, "/approvals")
            for data in ({"choice": "approve"}, {"choice": "approve", "csrf": "0" * 64}):
                response = await client.post(f"/approvals/{approval_id}", data=data)
                assert response.status == 403
                assert "reload the page" in await response.text()
            # another session's token does not carry over
            async with dash.signed_in("test:admin") as other:
                theirs = csrf_of(await page(other, "/approvals"))
            assert theirs != csrf_of(body)
            response = await client.post(
                f"/approvals/{approval_id}", data={"choice": "approve", "csrf": theirs}
            )
            assert response.status == 403
        approval = await dash.deck.approvals.get(approval_id)
        assert approval is not None
        assert approval.status == ApprovalState.PENDING


async def test_the_same_rules_apply_as_in_chat() -> None:
    async with dashboard_deck() as dash:
        approval_id = await pending_card(dash)
        async with dash.signed_in("test:carl") as client:  # an operator, not an approver
            body = await page(client, "/approvals")
            assert "not one of the approvers" in body
            response = await client.post(
                f"/approvals/{approval_id}", data={"csrf": csrf_of(body), "choice": "approve"}
            )
            assert "not one of the approvers" in await response.text()
        # the chat side heard the refused press like any other
        assert any("not one of the approvers" in text_ for text_, _ in dash.chat.press_answers)
        async with dash.signed_in("test:ada") as client:
            body = await page(client, "/approvals")
            empty = await client.post(
                f"/approvals/{approval_id}", data={"csrf": csrf_of(body), "choice": "reason"}
            )
            assert "Write the reason first" in await empty.text()
            denied = await client.post(
                f"/approvals/{approval_id}",
                data={"csrf": csrf_of(body), "choice": "reason", "reason": "not today"},
            )
            assert "Denied." in await denied.text()
            late = await client.post(
                f"/approvals/{approval_id}", data={"csrf": csrf_of(body), "choice": "approve"}
            )
            assert "already decided" in await late.text()
            forged = await client.post(
                "/approvals/ffffffff", data={"csrf": csrf_of(body), "choice": "approve"}
            )
            assert "No such approval" in await forged.text()
        await dash.chat.wait_for("Denied by test:ada")
        approval = await dash.deck.approvals.get(approval_id)
        assert approval is not None
        assert approval.reason == "not today"
        actions = await audit_actions(dash)
        assert "approval.refused" in actions
        assert "approval.forged" in actions


# --- jobs ---------------------------------------------------------------------------


async def test_admins_pause_and_resume_jobs_operators_cannot() -> None:
    async with dashboard_deck() as dash:
        await dash.chat.say("/every 1h echo hourly", user="test:admin")
        made = await dash.chat.wait_for("/pause")
        job_id = re.search(r"/pause ([0-9a-f]{6})", made.text)[1]  # type: ignore[index]
        async with dash.signed_in("test:ada") as client:
            body = await page(client, "/jobs")
            assert job_id in body
            assert f'id="pause-{job_id}"' not in body
            refused = await client.post(f"/jobs/{job_id}/pause", data={"csrf": csrf_of(body)})
            assert refused.status == 403
        async with dash.signed_in("test:admin") as client:
            body = await page(client, "/jobs")
            assert "every 1h" in body
            paused = await client.post(f"/jobs/{job_id}/pause", data={"csrf": csrf_of(body)})
            assert f"Job {job_id} paused." in await paused.text()
            assert (await dash.deck.scheduler.get(job_id)).state == JobState.PAUSED  # type: ignore[union-attr]
            again = await client.post(f"/jobs/{job_id}/pause", data={"csrf": csrf_of(body)})
            assert "cannot become paused" in await again.text()
            resumed = await client.post(f"/jobs/{job_id}/resume", data={"csrf": csrf_of(body)})
            assert f"Job {job_id} resumed." in await resumed.text()
        async with dash.deck.db.session() as session:
            job = await session.get(Job, job_id)
        assert job is not None
        assert job.state == JobState.ACTIVE
        assert "job.paused" in await audit_actions(dash)


# --- live -----------------------------------------------------------------------------


async def test_the_event_stream_says_when_runs_start_and_finish() -> None:
    async with (
        dashboard_deck() as dash,
        dash.signed_in("test:ada") as client,
        client.get("/events") as stream,
    ):
        assert stream.status == 200
        assert stream.headers["Content-Type"] == "text/event-stream"
        assert (await stream.content.readline()).startswith(b"retry:")
        await dash.chat.say("/ask slow x", user="test:ada")
        changes = 0
        async with asyncio.timeout(8):
            while changes < 2:  # one when it starts, one when it ends
                line = await stream.content.readline()
                changes += line == b"event: changed\n"
        await dash.chat.wait_for("slow x")


# --- start-up -------------------------------------------------------------------------


async def test_a_port_in_use_is_one_clear_error() -> None:
    async with dashboard_deck() as dash:
        port = dash.dashboard.port
        config = make_config(USERS + AGENTS, dashboard={"enabled": True, "port": port})
        dash.deck.config = config
        with pytest.raises(DashboardStartError, match=rf"cannot listen on 127.0.0.1:{port}"):
            async with Dashboard(dash.deck, dash.actions):
                pass


async def test_stopping_ends_open_event_streams() -> None:
    async with dashboard_deck() as dash, dash.signed_in("test:ada") as client:
        stream = await client.get("/events")
        await stream.content.readline()
        async with asyncio.timeout(5):
            await dash.dashboard.__aexit__(None, None, None)
            rest = await stream.content.read()
        assert b"event" not in rest
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.get("/")


# --- tool calls -------------------------------------------------------------------------


async def test_a_run_page_lists_its_tool_calls_with_secrets_scrubbed(
    fake_openai: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")
    llm = f"""
[llm]
base_url = "{fake_openai.base_url}"
api_key = "env:TEST_OPENAI_KEY"
max_retries = 0
[[agents]]
name = "helper"
kind = "llm"
model = "fake-model"
tools = ["remember", "run_command"]
"""
    fake_openai.script = [
        call("remember", text="the door code is 4711-secret-door"),
        call("run_command", argv=["echo", "hi"]),
        say("noted, and I did not run it"),
    ]
    async with dashboard_deck(dashboard_config(llm)) as dash:
        await dash.deck.vault.set("DOOR", "4711-secret-door", by="test:admin")
        await dash.chat.say("/ask helper remember the door", user="test:ada")
        card = await dash.chat.wait_for("Approval needed")
        approval_id = re.search(r"\(([0-9a-f]{8})\)", card.text)[1]  # type: ignore[index]
        await dash.chat.press(f"{approval_id}:deny", user="test:admin")
        await dash.chat.wait_for("noted, and I did not run it")
        await dash.deck.runner.flush()
        async with dash.deck.db.session() as session:
            run = (await session.exec(select(Run).where(Run.agent == "helper"))).one()
        async with dash.signed_in("test:admin") as client:
            detail = await page(client, f"/runs/{run.id}")
        assert "tool remember · done" in detail
        assert "tool run_command · denied" in detail
        assert "Denied by test:admin" in detail
        assert "4711-secret-door" not in detail
        assert "[redacted:DOOR]" in detail


# --- storage on both databases ----------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db_url(request: pytest.FixtureRequest, data_dir: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(data_dir)
    return str(request.getfixturevalue("pg_url"))


async def test_links_and_history_queries_on_both_databases(any_db_url: str) -> None:
    clock = FakeClock()
    async with Database(any_db_url) as db:
        used = UsedLinks(db)
        assert await used.claim("link-1", "test:ada", clock.now())
        assert not await used.claim("link-1", "test:ada", clock.now())
        await used.prune(clock.now() + timedelta(seconds=1))
        assert await used.claim("link-1", "test:ada", clock.now())  # pruned: the id is free
        before = await history.pulse(db)
        async with db.session() as session:
            session.add(
                Run(
                    id="r1",
                    agent="echo",
                    chat_id="test:a",
                    user_id="test:a",
                    started_at=clock.now(),
                )
            )
            session.add(
                OutboxMessage(
                    key="k1",
                    chat_id="test:a",
                    next_attempt_at=clock.now(),
                    created_at=clock.now(),
                    state=OutboxState.UNDELIVERED,
                )
            )
            await session.commit()
        assert await history.pulse(db) != before
        delivered = await history.deliveries(db)
        assert delivered["test"].undelivered == 1
        assert [r.id for r in await history.runs(db, history.RunFilter(chat="test:a"))] == ["r1"]
