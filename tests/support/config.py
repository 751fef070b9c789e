"""Build a deck's `Config` from TOML text the way the CLI does (validated, typed)."""

from __future__ import annotations

import tomllib
from typing import Any

from bot.config import Config, parse_config


def make_config(text: str, **sections: Any) -> Config:
    """A config from TOML text; keyword sections are merged on top."""
    data = tomllib.loads(text)
    data.update(sections)
    return parse_config(data, source="test.toml")
