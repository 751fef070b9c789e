"""Alembic migrations, configured in code (no alembic.ini to lose)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alembic.config import Config

# The newest revision; a test checks that it matches the scripts, so start-up can skip
# loading Alembic when the database is already there.
HEAD_REVISION = "0012"


def alembic_config() -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(Path(__file__).parent))
    return config
