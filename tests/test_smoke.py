"""The core end to end in-process: a message in, an agent's answer out."""

from __future__ import annotations

from tests.support.config import make_config
from tests.support.decks import DeckFactory

BASE = """
[deck]
default_agent = "echo"
[[users]]
id = "test:admin"
role = "admin"
[[agents]]
name = "echo"
kind = "echo"
"""


async def test_plain_text_reaches_the_default_agent(deck_with_chat: DeckFactory) -> None:
    async with deck_with_chat(make_config(BASE)) as (_deck, chat):
        await chat.say("hello there")
        posted = await chat.wait_for("hello there")
    assert posted.text == "echo: hello there"
