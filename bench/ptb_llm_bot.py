"""A bare python-telegram-bot bot that makes one model call per message, for comparison.

`python bench/ptb_llm_bot.py <base_url> <token> <llm_base_url>`: `Application.run_polling()`
with its defaults and one handler that sends the message's text to the chat-completion API
through the official `openai` SDK (`AsyncOpenAI`, the key from `OPENAI_API_KEY`) and replies
with the answer. It is the floor `bench.telegram_bench` measures agentdeck's llm agent
against: the same Bot API, the same model call, nothing else (no storage, no history).
"""

from __future__ import annotations

import sys

from openai import AsyncOpenAI
from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters


def main() -> None:
    base_url, token, llm_url = sys.argv[1], sys.argv[2], sys.argv[3]
    model = AsyncOpenAI(base_url=llm_url, max_retries=0)

    async def answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        completion = await model.chat.completions.create(
            model="fake", messages=[{"role": "user", "content": update.message.text or ""}]
        )
        await update.message.reply_text(completion.choices[0].message.content or "")

    app = Application.builder().token(token).base_url(base_url).build()
    app.add_handler(MessageHandler(filters.TEXT, answer))
    app.run_polling()


if __name__ == "__main__":
    main()
