"""An Errbot plugin that answers every message with one model call, for comparison.

A regex command with no prefix (`re_botcmd(pattern=".", prefixed=False)`) is Errbot's
way to take any text; it runs in Errbot's command thread pool (`BOT_ASYNC`, 10 threads by
default) and its return value is the reply. The call is the one agentdeck's llm agent and
`bench/ptb_llm_bot.py` make: the official `openai` SDK's chat completion (the synchronous
client, as Errbot's commands are threads), model "fake", the text as the user's message.
"""

from __future__ import annotations

import os
import re

from errbot import BotPlugin, re_botcmd
from openai import OpenAI


class LlmReply(BotPlugin):
    def activate(self) -> None:
        super().activate()
        self.model = OpenAI(base_url=os.environ["BENCH_LLM_URL"], max_retries=0)

    @re_botcmd(pattern=r"^(?!!).+", prefixed=False, flags=re.DOTALL)
    def answer(self, msg, match) -> str:  # type: ignore[no-untyped-def]
        completion = self.model.chat.completions.create(
            model="fake", messages=[{"role": "user", "content": msg.body}]
        )
        return completion.choices[0].message.content or ""
