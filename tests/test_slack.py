"""The Slack transport end to end: the real slack-bolt app and slack_sdk client against a
fake Slack on 127.0.0.1, with requests signed like Slack's (HTTP mode) or envelopes
over a WebSocket (Socket Mode)."""

from __future__ import annotations

import asyncio
import copy
import json
import sqlite3
import time
from pathlib import Path

import pytest

from bot.app import open_deck
from bot.errors import TransportStartError
from bot.transports.slack.transport import STORE_SECONDS
from tests.fakes.slack_server import (
    APP_TOKEN,
    BOT_TOKEN,
    BOT_USER,
    SIGNING_SECRET,
    FakeSlack,
    event_body,
    sign,
)
from tests.support.config import make_config
from tests.support.decks import audit_actions
from tests.support.slack import CONFIG, replies, slack_deck, slack_section


@pytest.fixture(autouse=True)
def _tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", BOT_TOKEN)
    monkeypatch.setenv("SLACK_APP_TOKEN", APP_TOKEN)
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)


# -- conversations ----------------------------------------------------------------------


async def test_mention_is_answered_in_its_thread(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (_deck, slack):
        ts = await slack.mention("hello <there> & co")
        answer = await fake_slack.wait_for_text("echo")
        assert (answer.channel, answer.thread_ts) == ("C1", ts)
        # Slack sent `&lt;there&gt; &amp;`: the agent saw `<there> &`, Slack gets it escaped.
        assert answer.shown == "*echo*: hello &lt;there&gt; &amp; co"
        assert fake_slack.called("chat.postMessage")[0].token == BOT_TOKEN


async def test_thread_remembers_its_agent_and_channels_their_binding(
    fake_slack: FakeSlack,
) -> None:
    async with slack_deck(fake_slack) as (_deck, slack):
        ts = await slack.mention("@other first")
        first = await fake_slack.wait_for_text(": first")
        await slack.mention("second", thread_ts=ts)
        second = await fake_slack.wait_for_text(": second")
        elsewhere_ts = await slack.mention("elsewhere")
        elsewhere = await fake_slack.wait_for_text(": elsewhere")
        bound_ts = await slack.mention("bound", channel="CBOUND")
        bound = await fake_slack.wait_for_text(": bound")
        assert [(m.shown, m.channel, m.thread_ts) for m in (first, second, elsewhere, bound)] == [
            ("*other*: first", "C1", ts),
            ("*other*: second", "C1", ts),  # the thread keeps its agent
            ("*echo*: elsewhere", "C1", elsewhere_ts),
            ("*other*: bound", "CBOUND", bound_ts),  # the channel's binding
        ]


async def test_direct_message_is_answered_in_place(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (_deck, slack):
        dm = {"type": "message", "channel_type": "im", "channel": "D1", "user": "UOP"}
        await slack.event({**dm, "text": "psst", "ts": "1700000001.000001"})
        answer = await fake_slack.wait_for_text("echo*: psst")
        assert (answer.channel, answer.thread_ts) == ("D1", None)


async def test_own_messages_other_bots_and_chatter_are_ignored(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (deck, slack):
        base = {"type": "message", "channel_type": "im", "channel": "D1", "ts": "1.1"}
        await slack.event({**base, "user": BOT_USER, "text": "mine"})
        await slack.event({**base, "user": "UX", "bot_id": "BOTHER", "text": "a bot"})
        await slack.event({**base, "subtype": "bot_message", "bot_id": "BX", "text": "a bot"})
        await slack.event({**base, "user": "UOP", "subtype": "message_changed", "text": "e"})
        await slack.event({**base, "channel_type": "channel", "channel": "C1", "user": "UOP"})
        await slack.mention("real")
        await fake_slack.wait_for_text("echo*: real")
        await deck.tasks.drain()
        assert [m.shown for m in fake_slack.messages.values()] == ["*echo*: real"]


async def test_retried_event_is_handled_once(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (deck, slack):
        event = {"type": "app_mention", "user": "UOP", "channel": "C1", "ts": "1700000002.1"}
        event["text"] = f"<@{BOT_USER}> once"
        first = await slack.event(event, event_id="EvSAME")
        again = await slack.event(event, event_id="EvSAME", retry=1)
        assert (first.status, again.status) == (200, 200)
        await fake_slack.wait_for_text("echo*: once")
        await deck.tasks.drain()
        assert len(fake_slack.called("chat.postMessage")) == 1


async def test_a_burst_asks_slack_who_we_are_only_at_start(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (_deck, slack):
        assert len(fake_slack.called("auth.test")) == 1  # the token check at start
        mentions = [slack.mention(f"burst {n}", channel=f"C{n}") for n in range(10)]
        commands = [slack.command(f"ask other burst {n}", channel=f"C{n}") for n in range(10)]
        await asyncio.gather(*mentions, *commands)
        await fake_slack.wait_for(lambda f: len(f.called("chat.postMessage")) >= 30)
        assert len(fake_slack.called("auth.test")) == 1


async def test_other_events_are_acknowledged_and_ignored(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (deck, slack):
        event = {"type": "reaction_added", "user": "UOP", "reaction": "eyes"}
        resp = await slack.event(event, event_id="EvREACT")
        assert resp.status == 200  # a 404 would make Slack send it again
        await slack.mention("after it")
        await fake_slack.wait_for_text("echo*: after it")
        await deck.tasks.drain()
        assert [m.shown for m in fake_slack.messages.values()] == ["*echo*: after it"]


async def test_forged_and_stale_requests_are_refused(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (deck, slack):
        body = event_body(
            {"type": "app_mention", "user": "UOP", "channel": "C1", "ts": "1.2", "text": "hi"},
            event_id="EvBAD",
        )
        forged = await slack.post(body, "application/json", sign(body, secret="wrong"))
        stale = await slack.post(
            body, "application/json", sign(body, timestamp=int(time.time()) - 600)
        )
        assert (forged.status, stale.status) == (401, 401)
        challenge = json.dumps({"type": "url_verification", "challenge": "c-123"})
        async with slack._http.post(
            slack.url,
            data=challenge,
            headers={"Content-Type": "application/json", **sign(challenge)},
        ) as resp:
            assert resp.status == 200
            assert "c-123" in await resp.text()
        await deck.tasks.drain()
        assert fake_slack.called("chat.postMessage") == []


async def test_slash_commands_open_a_thread(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (_deck, slack):
        resp = await slack.command("agents")
        assert resp.status == 200
        opened = await fake_slack.wait_for_text("/deck agents")
        assert opened.shown.startswith("<@UOP> `/deck agents`")
        listing = await fake_slack.wait_for(
            lambda f: [t for t in replies(f, "C1", opened.ts) if "shell" in t]
        )
        assert "echo" in listing[0]
        await slack.command("ask other uptime")
        await fake_slack.wait_for_text("other*: uptime")
        await slack.command("")
        bare = await fake_slack.wait_for_text("<@UOP> `/deck`")
        (usage,) = await fake_slack.wait_for(
            lambda f: [t for t in replies(f, "C1", bare.ts) if "/deck ask" in t]
        )
        assert usage.startswith("*Commands*\n`/deck agents` the roster"), (
            usage
        )  # the bare command: help
        assert "`/deck ask &lt;agent&gt; &lt;text&gt;` ask one agent" in usage


async def test_slash_command_where_the_bot_is_not_a_member(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (_deck, slack):
        await slack.command("agents", channel="CNOTIN1", response_url=f"{fake_slack.url}/respond/1")
        answer = await fake_slack.wait_for(lambda f: f.responses)
        assert answer[0]["response_type"] == "ephemeral"
        assert "/invite @deck" in answer[0]["text"]


async def test_channel_members_may_act_as_operators_in_bound_channels(
    fake_slack: FakeSlack,
) -> None:
    async with slack_deck(fake_slack, channel_members="operator") as (deck, slack):
        await slack.mention("member here", user="UNEW", channel="CBOUND")
        await fake_slack.wait_for_text("other*: member here")
        await slack.mention("member there", user="UNEW", channel="C1")
        await fake_slack.wait_for_text("I only work for the people listed")
        assert "refused.unknown_user" in await audit_actions(deck)


# -- approvals ----------------------------------------------------------------------------


async def test_approval_with_buttons_in_the_thread(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (deck, slack):
        ts = await slack.mention("@shell echo approved-run", user="UADMIN")
        card = await fake_slack.wait_for_text("Approval needed")
        assert card.thread_ts == ts
        styles = {b["text"]["text"]: b.get("style") for b in card.buttons}
        assert (styles["Approve"], styles["Deny"]) == ("primary", "danger")
        assert len({b["action_id"] for b in card.buttons}) == len(card.buttons)  # unique

        stale = copy.deepcopy(card)  # what a slow client still shows after the decision
        await slack.press(card, "Approve", user="UOP")
        refusal = await fake_slack.wait_for(lambda f: f.called("chat.postEphemeral"))
        assert refusal[0].args["user"] == "UOP"
        assert "not one of the approvers" in refusal[0].args["text"]
        assert refusal[0].args["thread_ts"] == ts
        assert card.edits == 0

        await slack.press(card, "Approve", user="UADMIN")
        await fake_slack.wait_for(lambda f: "Approved by" in card.shown)
        assert "Approved by <@UADMIN> at " in card.shown
        assert card.buttons == []
        await fake_slack.wait_for(
            lambda f: [t for t in replies(f, "C1", ts) if "approved-run" in t and "exit 0" in t]
        )

        await slack.press(stale, "Deny", user="UADMIN")
        late = await fake_slack.wait_for(lambda f: f.called("chat.postEphemeral")[1:])
        assert "already decided" in late[0].args["text"]
        await deck.tasks.drain()
        assert card.edits == 1
        assert "approval.late" in await audit_actions(deck)


# -- working feel -------------------------------------------------------------------------


async def test_event_is_acknowledged_before_its_run_ends(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    async with slack_deck(fake_slack) as (_deck, slack):
        # The run cannot end before the gate opens, and the gate opens only after Slack
        # got its 200: an acknowledgement that waited for the run would never come.
        async with asyncio.timeout(10):
            ts = await slack.mention(f"@slow {gate}")
        gate.touch()
        answer = await fake_slack.wait_for_text("finished")
        assert (answer.channel, answer.thread_ts) == ("C1", ts)


async def test_working_message_is_edited_into_the_result(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    async with slack_deck(fake_slack) as (_deck, slack):
        ts = await slack.mention(f"@slow {gate}")
        working = await fake_slack.wait_for_text("working…")  # shown while the run waits
        assert (working.thread_ts, working.shown.split(" working…")[0]) == (ts, "*slow*")
        gate.touch()
        await fake_slack.wait_for(lambda f: "finished" in working.shown)
        assert working.edits >= 1
        assert working.shown.startswith("*slow*\n```starting\nfinished```\nexit 0 · ")
        assert len(fake_slack.in_thread("C1", ts)) == 1  # one message, edited


async def test_long_output_is_split_into_sections(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (_deck, slack):
        await slack.mention("@big 3000")
        result = await fake_slack.wait_for_text("exit 0")
        texts = [b["text"]["text"] for b in result.blocks]
        assert len(texts) >= 5
        assert all(len(text) <= 3000 for text in texts)
        assert all(text.count("```") % 2 == 0 for text in texts)  # no block cut open
        numbers = "".join(texts).partition("exit 0")[0].replace("```", "\n").split()
        assert numbers[:3] == ["*big*", "1", "2"]
        assert [n for n in numbers if n.isdigit()] == [str(n) for n in range(1, 3001)]


async def test_very_long_output_goes_as_a_file(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (_deck, slack):
        ts = await slack.mention("@big 40000")
        result = await fake_slack.wait_for_text("the full text is in the file below")
        assert len(result.blocks) == 2
        await fake_slack.wait_for(lambda f: f.called("files.completeUploadExternal"))
        (done,) = fake_slack.called("files.completeUploadExternal")
        assert (done.args["channel_id"], done.args["thread_ts"]) == ("C1", ts)
        (content,) = fake_slack.uploads.values()
        lines = content.decode().splitlines()
        assert lines[:3] == ["big", "1", "2"]
        assert lines[40_000:] == ["40000", lines[-1]]
        assert lines[-1].startswith("exit 0 · ")


# -- limits and start-up ------------------------------------------------------------------


async def test_rate_limit_is_waited_out_and_dropped_connections_retried(
    fake_slack: FakeSlack,
) -> None:
    async with slack_deck(fake_slack) as (_deck, slack):
        fake_slack.fail_next("chat.postMessage", "429")
        await slack.mention("patience")
        await fake_slack.wait_for_text("echo*: patience")
        first, second = fake_slack.called("chat.postMessage")
        assert first.args == second.args
        fake_slack.fail_next("chat.postMessage", "drop")
        await slack.mention("again")
        await fake_slack.wait_for_text("echo*: again")
        assert len(fake_slack.called("chat.postMessage")) == 4


async def test_rate_limit_waits_for_retry_after(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (_deck, slack):
        fake_slack.fail_next("chat.postMessage", "429")
        started = time.monotonic()
        await slack.mention("slowly")
        await fake_slack.wait_for_text("echo*: slowly")
        assert time.monotonic() - started >= 1.0


@pytest.mark.parametrize(
    ("env", "slack", "expected"),
    [
        ({"SLACK_BOT_TOKEN": None}, {}, "slack.bot_token: The environment variable"),
        ({"SLACK_BOT_TOKEN": "xoxb-wrong"}, {}, "Slack refused the bot token (invalid_auth)"),
        ({}, {"base_url": "http://127.0.0.1:9/api/"}, "Cannot reach http://127.0.0.1:9/api/"),
        ({"SLACK_APP_TOKEN": "xapp-wrong"}, {"mode": "socket"}, "refused the app token"),
        ({"SLACK_SIGNING_SECRET": None}, {}, "slack.signing_secret: The environment variable"),
        ({"SLACK_SIGNING_SECRET": " "}, {}, "slack.signing_secret is empty"),
    ],
)
async def test_bad_start_is_one_clear_error(
    fake_slack: FakeSlack,
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str | None],
    slack: dict[str, str],
    expected: str,
) -> None:
    for name, value in env.items():
        if value is None:
            monkeypatch.delenv(name)
        else:
            monkeypatch.setenv(name, value)
    config = make_config(CONFIG, slack=slack_section(fake_slack) | slack)
    with pytest.raises(TransportStartError) as caught:
        async with asyncio.timeout(20), open_deck(config):
            pass
    message = str(caught.value)
    assert expected in message
    assert "\n" not in message
    assert BOT_TOKEN not in message
    assert "xoxb-wrong" not in message


# -- Socket Mode --------------------------------------------------------------------------


async def test_socket_mode_delivers_an_event_and_gets_the_ack(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack, mode="socket") as (_deck, _slack):
        (opened,) = fake_slack.called("apps.connections.open")
        assert opened.token == APP_TOKEN
        event = {
            "type": "app_mention",
            "user": "UOP",
            "text": f"<@{BOT_USER}> over the socket",
            "ts": "1700000009.000001",
            "channel": "C1",
        }
        envelope = {
            "envelope_id": "env-1",
            "type": "events_api",
            "accepts_response_payload": False,
            "retry_attempt": 0,
            "retry_reason": "",
            "payload": json.loads(event_body(event, event_id="EvSOCK")),
        }
        await fake_slack.socket_send(envelope)
        acks = await fake_slack.wait_for(lambda f: f.acks)
        assert acks[0] == {"envelope_id": "env-1"}
        answer = await fake_slack.wait_for_text("echo*: over the socket")
        assert answer.thread_ts == "1700000009.000001"
        await fake_slack.socket_send({**envelope, "envelope_id": "env-2", "retry_attempt": 1})
        await fake_slack.wait_for(lambda f: len(f.acks) == 2)
        await asyncio.sleep(0.2)
        assert len(fake_slack.called("chat.postMessage")) == 1  # redelivery: acked, skipped


async def test_socket_mode_acknowledges_an_event_only_once_it_is_stored(
    fake_slack: FakeSlack, data_dir: Path
) -> None:
    async with slack_deck(fake_slack, mode="socket") as (deck, _slack):
        event = {"type": "app_mention", "user": "UOP", "ts": "1700000009.000002", "channel": "C1"}
        event["text"] = f"<@{BOT_USER}> stored first"
        payload = json.loads(event_body(event, event_id="EvHELD"))
        envelope = {"envelope_id": "env-1", "type": "events_api", "payload": payload}
        holder = sqlite3.connect(data_dir / "agentdeck.db", isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")  # another writer holds the database
            await fake_slack.socket_send(envelope)
            await asyncio.sleep(STORE_SECONDS + 0.5)
            assert fake_slack.acks == []  # not stored in time: Slack will send it again
        finally:
            holder.close()
        await fake_slack.wait_for_text("echo*: stored first")  # stored since, and handled
        await fake_slack.socket_send({**envelope, "envelope_id": "env-2", "retry_attempt": 1})
        await fake_slack.wait_for(lambda f: f.acks == [{"envelope_id": "env-2"}])
        await deck.tasks.drain()
        assert len(fake_slack.called("chat.postMessage")) == 1  # the retry: acked, skipped
