"""Telegram through python-telegram-bot: the only package that imports `telegram`."""

from bot.unused_imports import TELEGRAM_UNUSED, left_out

# python-telegram-bot's passport crypto and httpx's command-line client are never used.
with left_out(TELEGRAM_UNUSED):
    from bot.transports.telegram.transport import TelegramTransport

__all__ = ["TelegramTransport"]
