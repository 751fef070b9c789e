"""Telegram through python-telegram-bot: the only package that imports `telegram`."""

from bot.transports.telegram.transport import TelegramTransport

__all__ = ["TelegramTransport"]
