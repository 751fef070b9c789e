"""Answers only their reader sees: the replies to a command with private arguments.

A slash command is seen by nobody but the bot, so `/deck secret set NAME value` is not
echoed into the channel; its thread id names the sender instead of a message
(`inbound.private_thread`), and what is sent there is shown to the sender alone.
Through the command's `response_url` while this process holds it (it works where the
bot is not a member, for 30 minutes), else with `chat.postEphemeral`. Neither kind of
message can be edited or looked up later: an edit is sent anew.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from bot.transports.slack.render import render_message
from bot.transports.slack.web import SlackWeb
from bot.types import MessageRef, Outgoing

log = logging.getLogger(__name__)

RESPONSE_URL_SECONDS = 30 * 60 - 60  # Slack takes answers for 30 minutes; a margin
EPHEMERAL = "ephemeral"  # the message id of an answer that Slack gives no id for


class PrivateReplies:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._urls: dict[str, tuple[str, float]] = {}  # thread -> (response_url, until)

    def remember(self, thread: str, response_url: str) -> None:
        """Answer `thread` through this command's `response_url` while it works."""
        now = self._clock()
        for old in [t for t, (_, until) in self._urls.items() if until <= now]:
            del self._urls[old]
        if response_url:
            self._urls[thread] = (response_url, now + RESPONSE_URL_SECONDS)

    async def send(
        self, web_api: SlackWeb, message: Outgoing, channel: str, user: str
    ) -> MessageRef:
        rendered = render_message(message)
        if rendered.attachment is not None:  # a file would be seen by the whole channel
            log.info("slack: a private answer is too long for one message; it was cut short")
        assert message.thread is not None
        url, until = self._urls.get(message.thread, ("", 0.0))
        if url and self._clock() < until:
            await web_api.respond(url, rendered.text, rendered.blocks)
            return MessageRef(chat=message.chat, message_id=EPHEMERAL, thread=message.thread)
        ts = await web_api.ephemeral(channel, user, rendered.text, None, rendered.blocks)
        return MessageRef(chat=message.chat, message_id=ts or EPHEMERAL, thread=message.thread)
