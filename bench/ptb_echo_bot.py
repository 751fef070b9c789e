"""A bare python-telegram-bot echo bot with default settings, for comparison.

`python bench/ptb_echo_bot.py <base_url> <token>`: `Application.run_polling()`, one
handler that answers every text with the same text.
"""

from __future__ import annotations

import sys

from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    assert update.message is not None
    await update.message.reply_text(f"echo: {update.message.text}")


def main() -> None:
    base_url, token = sys.argv[1], sys.argv[2]
    app = Application.builder().token(token).base_url(base_url).build()
    app.add_handler(MessageHandler(filters.TEXT, echo))
    app.run_polling()


if __name__ == "__main__":
    main()
