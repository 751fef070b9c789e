"""Attacks on the Slack transport, through the real bolt app and a fake Slack on 127.0.0.1:
junk at the HTTP endpoint, secrets typed into slash commands, people from other workspaces."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlmodel import select

from bot.deck import Deck
from bot.transports.slack import inbound, members, shapes
from bot.transports.slack.inbound import SlackBotIdentity
from storage.models import AuditEvent, OutboxMessage, OutboxState
from tests.fakes.slack_server import BOT_USER, FakeSlack, action_body, event_body, sign
from tests.support.slack import everything_slack_got, slack_deck
from tests.support.waiting import eventually

# -- junk at the HTTP endpoint ------------------------------------------------------------

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"

# (content type, body): what Slack never sends.
MALFORMED = [
    (JSON, ""),
    (JSON, "{"),
    (JSON, "[]"),
    (JSON, "null"),
    (JSON, '"an event"'),
    (JSON, "[" * 50_000),
    (JSON, '{"type": "event_callback", "event": "a string"}'),
    (JSON, '{"type": "event_callback", "event": {"type": "app_mention", "user": 5}}'),
    (JSON, '{"type": "event_callback", "event": {"type": "message", "channel": []}}'),
    (JSON, '{"type": "event_callback", "event_id": [], "event": {"type": "app_mention"}}'),
    (JSON, '{"type": "url_verification"}'),
    (JSON, '{"type": 7}'),
    (FORM, "payload=%7B"),
    (FORM, "payload=" + "%5B%5D"),
    (FORM, urlencode({"payload": json.dumps({"type": "block_actions", "actions": "x"})})),
    (FORM, urlencode({"payload": json.dumps({"type": "block_actions", "user": "U1"})})),
    (
        FORM,
        urlencode(
            {
                "payload": json.dumps(
                    {"type": "block_actions", "user": {"id": 3}, "actions": [{"action_id": 5}]}
                )
            }
        ),
    ),
    (FORM, "command=%2Fdeck&text=agents"),  # no user, no channel
    (FORM, "\xff\xfe=1"),
]


def _no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert not bad, [r.getMessage() for r in bad]


@pytest.mark.parametrize("signed", [False, True], ids=["unsigned", "signed"])
async def test_malformed_bodies_get_4xx_and_no_traceback(
    fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture, signed: bool
) -> None:
    """Unsigned: 401 before the body is read. Signed (only Slack could): 400, one line."""
    async with slack_deck(fake_slack) as (deck, slack):
        statuses = []
        for content_type, body in MALFORMED:
            headers = sign(body) if signed else {"X-Slack-Request-Timestamp": "1"}
            response = await slack.post(body, content_type, headers)
            statuses.append(response.status)
        expected = [400] * len(MALFORMED) if signed else [401] * len(MALFORMED)
        assert statuses == expected, list(zip(MALFORMED, statuses, strict=True))
        await slack.mention("still answering")
        await fake_slack.wait_for_text("echo*: still answering")
        await deck.tasks.drain()
        assert len(fake_slack.called("chat.postMessage")) == 1
    _no_tracebacks(caplog)
    refusals = [r for r in caplog.records if r.name.startswith("bot.transports.slack")]
    assert len([r for r in refusals if "answered 4" in r.getMessage()]) == len(MALFORMED)


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Not-Slack": "1"},  # no signature at all
        {"X-Slack-Request-Timestamp": "soon", "X-Slack-Signature": "v0=00"},
        {"X-Slack-Request-Timestamp": str(int(time.time())), "X-Slack-Signature": "v0=ü"},
        {"X-Slack-Request-Timestamp": "1e99", "X-Slack-Signature": ""},
    ],
    ids=["none", "timestamp-not-a-number", "non-ascii-signature", "empty-signature"],
)
async def test_forged_signature_headers_get_401(
    fake_slack: FakeSlack, caplog: pytest.LogCaptureFixture, headers: dict[str, str]
) -> None:
    async with slack_deck(fake_slack) as (deck, slack):
        body = event_body({"type": "app_mention", "user": "UOP", "channel": "C1"}, event_id="Ev1")
        response = await slack.post(body, JSON, headers)
        assert response.status == 401
        await deck.tasks.drain()
        assert fake_slack.called("chat.postMessage") == []
    _no_tracebacks(caplog)


async def test_a_command_that_says_payload_is_not_dropped(fake_slack: FakeSlack) -> None:
    """bolt's own form parsing took any body containing "payload" for an interaction."""
    async with slack_deck(fake_slack) as (_deck, slack):
        response = await slack.command("ask other the payload is late")
        assert response.status == 200
        answer = await fake_slack.wait_for_text("*: the payload is late")
        assert answer.shown == "*other*: the payload is late"


# -- a secret typed into a slash command ---------------------------------------------------

VALUE = 'zebra4711q-ü"\\-value'


def leaked_to_slack(fake: FakeSlack, answers: list[str]) -> list[str]:
    """The spellings of the secret's value found in what Slack got or answered."""
    seen = everything_slack_got(fake) + "\n".join(answers)
    return [n for n in (VALUE, "zebra4711q", json.dumps(VALUE)[1:-1]) if n in seen]


async def test_a_secret_set_by_slash_command_never_reaches_slack(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (deck, slack):
        response_url = f"{fake_slack.url}/respond/1"
        answer = await slack.command(
            f"secret set API_TOKEN {VALUE}", user="UADMIN", channel="D1", response_url=response_url
        )
        assert answer.status == 200
        told = await fake_slack.wait_for(
            lambda f: [r for r in f.responses if "Stored" in r["text"]]
        )
        assert told[0]["response_type"] == "ephemeral"
        assert "API_TOKEN" in told[0]["text"]
        assert deck.vault.get("API_TOKEN") == VALUE
        await deck.tasks.drain()
        assert fake_slack.messages == {}  # no echo, no answer in the channel
        assert leaked_to_slack(fake_slack, [await answer.text()]) == []


async def test_a_secret_typed_in_a_channel_is_refused_and_not_echoed(fake_slack: FakeSlack) -> None:
    async with slack_deck(fake_slack) as (deck, slack):
        answer = await slack.command(f"secret set API_TOKEN {VALUE}", user="UADMIN", channel="C1")
        refusal = await fake_slack.wait_for(lambda f: f.called("chat.postEphemeral"))
        assert refusal[0].args["user"] == "UADMIN"
        assert "only in a private chat" in refusal[0].args["text"]
        await deck.tasks.drain()
        assert fake_slack.messages == {}
        assert "API_TOKEN" not in [i.name for i in await deck.vault.listing()]
        assert leaked_to_slack(fake_slack, [await answer.text()]) == []


async def test_the_echo_of_a_command_is_scrubbed_and_kept_in_the_outbox(
    fake_slack: FakeSlack,
) -> None:
    async with slack_deck(fake_slack) as (deck, slack):
        await deck.vault.set("API_TOKEN", VALUE, by="test")
        await slack.command(f"ask other {VALUE}", user="UOP", channel="C1")
        echo = await fake_slack.wait_for_text("/deck ask other")
        assert echo.shown == "<@UOP> `/deck ask other [redacted:API_TOKEN]`"
        answer = await fake_slack.wait_for_text("other*:")
        assert answer.thread_ts == echo.ts  # the answers still go into the echo's thread
        await deck.tasks.drain()
        assert leaked_to_slack(fake_slack, []) == []
        await deck.runner.flush()
        async with deck.db.session() as session:
            rows = (await session.exec(select(OutboxMessage))).all()
        echoed = [r for r in rows if r.message_id == echo.ts]
        assert len(echoed) == 1
        assert echoed[0].state == OutboxState.SENT
        assert VALUE not in json.dumps(echoed[0].payload, ensure_ascii=False)


async def test_an_echo_where_the_bot_is_not_a_member_is_not_tried_again(
    fake_slack: FakeSlack,
) -> None:
    async with slack_deck(fake_slack) as (deck, slack):
        url = f"{fake_slack.url}/respond/1"
        await slack.command("agents", channel="CNOTIN1", response_url=url)
        (answer,) = await fake_slack.wait_for(lambda f: f.responses)
        assert "/invite @deck" in answer["text"]
        await deck.tasks.drain()
        await deck.runner.flush()
        async with deck.db.session() as session:
            rows = (await session.exec(select(OutboxMessage))).all()
        assert [(r.chat_id, r.state) for r in rows] == [("slack:CNOTIN1", OutboxState.UNDELIVERED)]
        assert deck.outbox is not None
        assert await deck.outbox.pump(backoff_over=True) == 0  # nothing left to deliver
        assert len(fake_slack.called("chat.postMessage")) == 1


# -- people from other workspaces, and guests ----------------------------------------------

OTHER_TEAM = "T0OTHER"

SHARED = """
[deck]
default_agent = "echo"
[[users]]
id = "slack:UADMIN"
role = "admin"
[[users]]
id = "slack:UPARTNER"
role = "operator"
[[agents]]
name = "echo"
kind = "echo"
[[agents]]
name = "logger"
kind = "command"
command = ["/bin/sh", "-c", "printf '%s\\\\n' \\"$0\\" >> {log}", "{{input}}"]
timeout = 20
approval = "always"
approvers = ["operator"]
[[bindings]]
chat = "slack:CBOUND"
agent = "logger"
"""


def shared_config(tmp_path: Path) -> tuple[str, Path]:
    log = tmp_path / "ran.log"
    return SHARED.format(log=log), log


async def _outsider_rows_reach(deck: Deck, count: int) -> list[AuditEvent]:
    """The outsiders' refusal rows, once there are `count` (none before)."""
    rows = await _outsider_rows(deck)
    return rows if len(rows) >= count else []


async def _outsider_rows(deck: Deck) -> list[AuditEvent]:
    await deck.runner.flush()
    async with deck.db.session() as session:
        rows = (await session.exec(select(AuditEvent))).all()
    return [r for r in rows if r.action == "refused.outsider"]


async def test_another_workspaces_press_in_a_shared_channel_is_refused(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    text, ran = shared_config(tmp_path)
    async with slack_deck(fake_slack, text, channel_members="operator") as (deck, slack):
        await slack.mention("@logger deploy-7", user="UADMIN", channel="CBOUND")
        card = await fake_slack.wait_for_text("Approval needed")
        button = next(b for b in card.buttons if b["text"]["text"] == "Approve")
        body = action_body(card, button, user="UFOREIGN", trigger="Tf1", team=OTHER_TEAM)
        assert (await slack.post(body, FORM)).status == 200
        refusal = await fake_slack.wait_for(lambda f: f.called("chat.postEphemeral"))
        assert refusal[0].args["user"] == "UFOREIGN"
        await deck.tasks.drain()
        assert card.edits == 0
        assert not ran.exists()
        (row,) = await _outsider_rows(deck)
        assert row.actor == "slack:UFOREIGN"
        assert OTHER_TEAM in row.detail["reason"]
        # a member of our own workspace, writing in the same channel, may approve
        await slack.press(card, "Approve", user="UMEMBER")
        await fake_slack.wait_for(lambda f: "Approved by" in card.shown)
        await fake_slack.wait_for(lambda f: ran.exists())
        await deck.tasks.drain()
        assert ran.read_text() == "deploy-7\n"


async def test_guests_and_other_workspaces_cannot_use_a_channel_role(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    text, ran = shared_config(tmp_path)
    fake_slack.users["UGUEST"] = {"is_restricted": True}
    fake_slack.users["USINGLE"] = {"is_ultra_restricted": True}
    fake_slack.users["UHIDDEN"] = {"team_id": OTHER_TEAM}  # the payload did not say
    fake_slack.users["UNOSCOPE"] = "missing_scope"
    async with slack_deck(fake_slack, text, channel_members="operator") as (deck, slack):
        for user in ("UGUEST", "USINGLE", "UHIDDEN", "UNOSCOPE"):
            await slack.mention(f"@logger by-{user}", user=user, channel="CBOUND")
        mention = {"type": "app_mention", "channel": "CBOUND", "user": "UCONNECT"}
        mention |= {"text": f"<@{BOT_USER}> @logger by-connect", "ts": "1700000001.000009"}
        await slack.event(mention | {"user_team": OTHER_TEAM})
        await slack.command("ask logger by-command", user="UCMD", channel="CBOUND", team=OTHER_TEAM)
        # The command is admitted after its echo is posted.
        rows = await eventually(lambda: _outsider_rows_reach(deck, 6))
        await deck.tasks.drain()
        assert "Approval needed" not in everything_slack_got(fake_slack)
        reasons = {r.actor.removeprefix("slack:"): r.detail["reason"] for r in rows}
        assert set(reasons) == {"UGUEST", "USINGLE", "UHIDDEN", "UNOSCOPE", "UCONNECT", "UCMD"}
        assert "guest" in reasons["UGUEST"]
        assert "guest" in reasons["USINGLE"]
        assert OTHER_TEAM in reasons["UHIDDEN"]
        assert OTHER_TEAM in reasons["UCONNECT"]
        assert "missing_scope" in reasons["UNOSCOPE"]
        # looked up once each, only those whose role would come from the channel alone
        looked_up = sorted(c.args["user"] for c in fake_slack.called("users.info"))
        assert looked_up == ["UGUEST", "UHIDDEN", "UNOSCOPE", "USINGLE"]
        await slack.mention("@logger by-guest-again", user="UGUEST", channel="CBOUND")
        await deck.tasks.drain()
        assert len(fake_slack.called("users.info")) == 4
    assert not ran.exists()


async def test_a_listed_partner_from_another_workspace_is_served(
    fake_slack: FakeSlack, tmp_path: Path
) -> None:
    text, _ran = shared_config(tmp_path)
    async with slack_deck(fake_slack, text, channel_members="operator") as (deck, slack):
        mention = {"type": "app_mention", "channel": "C1", "user": "UPARTNER"}
        mention |= {"text": f"<@{BOT_USER}> hello", "ts": "1700000001.000010"}
        await slack.event(mention | {"user_team": OTHER_TEAM})
        await fake_slack.wait_for_text("echo*: hello")
        await deck.tasks.drain()
        assert await _outsider_rows(deck) == []
        assert fake_slack.called("users.info") == []  # listed: nothing to look up


# -- any payload the endpoint lets through can be read -------------------------------------

_ANY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=6,
)


def _either(*good: str) -> st.SearchStrategy[Any]:
    """Mostly a value Slack would send, sometimes anything at all."""
    return st.sampled_from(good) | st.sampled_from(good) | _ANY


_EVENT = st.fixed_dictionaries(
    {"type": _either("app_mention", "message"), "user": _either("U1", "UBOT")},
    optional={
        "channel": _either("C1", "D1"),
        "channel_type": _either("im", "channel"),
        "text": st.text(max_size=8) | _ANY,
        "ts": _either("1.2"),
        "thread_ts": _either("1.1"),
        "subtype": _either("file_share", "bot_message"),
        "user_team": _either("T0TEAM", "T0OTHER"),
    },
)
_ACTION = st.fixed_dictionaries(
    {"type": _either("block_actions"), "user": st.fixed_dictionaries({"id": _either("U1")})},
    optional={
        "actions": st.lists(
            st.fixed_dictionaries({"action_id": _either("a"), "value": _either("v")}), max_size=2
        )
        | _ANY,
        "channel": st.fixed_dictionaries({"id": _either("C1")}) | _ANY,
        "container": _ANY,
        "message": _ANY,
        "team": _ANY,
        "trigger_id": _ANY,
    },
)
_COMMAND = st.fixed_dictionaries(
    {"command": _either("/deck"), "user_id": _either("U1"), "channel_id": _either("C1", "D1")},
    optional={"text": st.text(max_size=8) | _ANY, "team_id": _ANY, "trigger_id": _ANY},
)
_PAYLOADS = (
    st.fixed_dictionaries({"type": _either("event_callback"), "event": _EVENT | _ANY})
    | _ACTION
    | _COMMAND
)


@settings(max_examples=200, deadline=None)
@given(_PAYLOADS)
def test_what_passes_the_shape_check_converts_without_errors(body: dict[str, Any]) -> None:
    if shapes.problem(body) is not None:
        return
    me = SlackBotIdentity("UBOT", "BBOT", "T0TEAM", "deck")
    results = [
        inbound.from_event(body, me),
        inbound.from_action(body),
        inbound.from_command(body, me, {"ask": None}) if "command" in body else None,
    ]
    for incoming in results:
        if incoming is not None:
            assert all(isinstance(v, str) for v in (incoming.chat, incoming.user, incoming.text))
    assert isinstance(members.outsider_in_payload(body, me), str)


async def test_a_strangers_secret_command_is_refused_without_keeping_the_value(
    fake_slack: FakeSlack,
) -> None:
    async with slack_deck(fake_slack) as (deck, slack):
        await slack.command(f"secret set API_TOKEN {VALUE}", user="USTRANGER", channel="D9")
        refusal = await fake_slack.wait_for(lambda f: f.called("chat.postEphemeral"))
        assert "only work for the people listed" in refusal[0].args["text"]
        await deck.runner.flush()
        async with deck.db.session() as session:
            rows = (await session.exec(select(AuditEvent))).all()
        refused = [r for r in rows if r.action == "refused.unknown_user"]
        assert len(refused) == 1
        assert "zebra4711q" not in json.dumps([r.detail for r in rows], ensure_ascii=False)
        assert leaked_to_slack(fake_slack, []) == []
