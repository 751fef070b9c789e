"""The Telegram deck most Telegram tests share: its people, its config against the fake
Bot API (`tests/fakes/telegram_server`), and what the bot sent to a chat."""

from __future__ import annotations

from bot.config import Config
from tests.fakes.telegram_server import FakeTelegram
from tests.support.config import make_config

ADMIN = 1001
OPERATOR = 1002  # may ask agents, may not approve
STRANGER = 1003
GROUP = -100500

CONFIG = f"""
[deck]
default_agent = "echo"
[telegram]
token = "env:TG_TOKEN"
base_url = "BASE_URL"
[[users]]
id = "telegram:{ADMIN}"
role = "admin"
[[users]]
id = "telegram:{OPERATOR}"
role = "operator"
[[agents]]
name = "echo"
kind = "echo"
[[agents]]
name = "shell"
kind = "command"
command = ["echo", "{{input}}"]
approval = "always"
approvers = ["telegram:{ADMIN}"]
[[agents]]
name = "long"
kind = "command"
command = ["python3", "-c", "{{input}}"]
"""


def config_for(fake: FakeTelegram, extra: str = "") -> Config:
    """The shared Telegram deck polling `fake`, with `extra` TOML appended."""
    return make_config(CONFIG.replace("BASE_URL", fake.base_url) + extra)


def texts_to(fake: FakeTelegram, chat: int) -> list[str]:
    """The HTML texts the bot sent to `chat` (as sent, not as shown)."""
    return [
        c.params["text"] for c in fake.calls_to("sendMessage") if int(c.params["chat_id"]) == chat
    ]
