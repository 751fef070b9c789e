"""Attacks on the Slack transport, through the real bolt app and a fake Slack on 127.0.0.1:
junk at the HTTP endpoint, secrets typed into slash commands, people from other workspaces."""

from __future__ import annotations

import json
import logging
import time
from urllib.parse import urlencode

import pytest

from tests.fakes.slack_server import FakeSlack, event_body, sign
from tests.test_slack import slack_deck

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
        await fake_slack.wait_for_text("other*: the payload is late")
