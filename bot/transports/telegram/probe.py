"""`agentdeck doctor`'s Telegram check: does the token work, is the Bot API reachable?

The same `getMe` the transport makes at start (through the same request backend),
without polling, setting a webhook or touching the inbox.
"""

from __future__ import annotations

import os

from telegram import Bot

from bot.config import TelegramMode, TelegramSection
from bot.errors import TransportStartError
from bot.transports.telegram.request import AiohttpRequest
from bot.transports.telegram.transport import DEFAULT_BASE_URL, DEFAULT_FILE_URL, introduce
from roster.errors import ReferenceNotFound
from roster.refs import SecretSource, resolve


async def probe(settings: TelegramSection, secrets: SecretSource) -> str:
    """`@username (polling)` when the token works; else `TransportStartError` saying what to do."""
    os.environ.setdefault("PTB_TIMEDELTA", "true")  # as the transport does: no PTB warning
    try:
        token = resolve(settings.token, secrets)
    except ReferenceNotFound as exc:
        raise TransportStartError(f"[telegram] token: {exc}") from None
    where = settings.base_url or DEFAULT_BASE_URL
    request = AiohttpRequest(connections=1)
    bot = Bot(
        token,
        base_url=where,
        base_file_url=settings.base_file_url or DEFAULT_FILE_URL,
        request=request,
        get_updates_request=request,
    )
    try:
        await introduce(bot, where)
    finally:
        await request.shutdown()
    mode = settings.mode
    extra = f" -> {settings.webhook_url}" if mode is TelegramMode.WEBHOOK else ""
    return f"@{bot.bot.username} ({mode}{extra})"
