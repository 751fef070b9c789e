"""Errbot's configuration for the bench's floor: Errbot's defaults, pointed at the fakes.

`errbot -c bench/errbot_floor/config.py`, with `ERRBOT_DATA_DIR` (fresh per start),
`TG_BASE_URL`, `TG_TOKEN` and `BENCH_LLM_URL` (and `OPENAI_API_KEY`) in the environment.
Left at Errbot's defaults: the shelf storage, the 10-thread command pool, the core plugins
but one: `VersionChecker` asks errbot.io for a newer release over the network.
"""

import logging
import os
from pathlib import Path

HERE = Path(__file__).resolve().parent
BACKEND = "FakeTelegram"
BOT_EXTRA_BACKEND_DIR = str(HERE / "backends")
BOT_EXTRA_PLUGIN_DIR = str(HERE / "plugins")
BOT_DATA_DIR = os.environ["ERRBOT_DATA_DIR"]
BOT_LOG_FILE = BOT_DATA_DIR + "/err.log"
BOT_LOG_LEVEL = logging.WARNING
BOT_IDENTITY = {"token": os.environ["TG_TOKEN"], "base_url": os.environ["TG_BASE_URL"]}
BOT_ADMINS = ("@bench_admin",)
CORE_PLUGINS = ("ACLs", "Backup", "ChatRoom", "CommandNotFoundFilter", "Flows", "Health",
                "Help", "Plugins", "TextCmds", "Utils", "Webserver")  # fmt: skip
