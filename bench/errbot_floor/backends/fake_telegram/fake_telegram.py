"""Errbot's Telegram backend with a configurable Bot API address, for the bench's fake.

Errbot 6.2's `TelegramBackend.serve_once` builds `telegram.Bot(token=...)` itself, with
no way to pass python-telegram-bot's `base_url`. This subclass, loaded through Errbot's
supported `BOT_EXTRA_BACKEND_DIR` and selected with `BACKEND = "FakeTelegram"`, sets
`BOT_IDENTITY["base_url"]` on the bot it builds and otherwise runs the stock loop line
for line (`getMe`, then `getUpdates` with a 60 s long poll, each update's offset saved
and its message handed to Errbot), so what is measured is Errbot's own Telegram path.
"""

from __future__ import annotations

import logging

import telegram

# The module, not its classes: Errbot takes every ErrBot subclass named in this module's
# namespace for the backend, and wants exactly one.
from errbot.backends import telegram_messenger as stock

log = logging.getLogger(__name__)


class FakeTelegramBackend(stock.TelegramBackend):
    def __init__(self, config):  # type: ignore[no-untyped-def]
        super().__init__(config)
        self.base_url = config.BOT_IDENTITY["base_url"]

    def serve_once(self):  # type: ignore[no-untyped-def]
        try:
            self.telegram = telegram.Bot(token=self.token, base_url=self.base_url)
            me = self.telegram.getMe()
        except telegram.TelegramError as e:
            log.error("Connection failure: %s", e.message)
            return False
        self.bot_identifier = stock.TelegramPerson(
            id=me.id, first_name=me.first_name, last_name=me.last_name, username=me.username
        )
        self.reset_reconnection_count()
        self.connect_callback()
        try:
            offset = self[stock.UPDATES_OFFSET_KEY]
        except KeyError:
            offset = 0
        try:
            while True:
                for update in self.telegram.getUpdates(offset=offset, timeout=60):
                    offset = update.update_id + 1
                    self[stock.UPDATES_OFFSET_KEY] = offset
                    if not hasattr(update, "message"):
                        continue
                    try:
                        self._handle_message(update.message)
                    except Exception:
                        log.exception("An exception occurred while processing update")
        except KeyboardInterrupt:
            return True
        except Exception:
            log.exception("Error reading from Telegram updates stream:")
        finally:
            self.disconnect_callback()
        return None
