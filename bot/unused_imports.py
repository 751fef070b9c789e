"""Keep optional parts of third-party packages that agentdeck never uses out of the process.

Two packages import optional extras at import time, costing start-up and memory for
nothing:

- python-telegram-bot imports `cryptography` for Telegram Passport decryption (its
  `passport` extra), which agentdeck does not use. The vault imports `cryptography`
  itself when a secret is first stored or read, so a deck without secrets never loads
  it (its Rust extension alone is about 8 MB resident).
- `httpx` imports its command-line client (`httpx._main`), which pulls in `rich` and
  `pygments` wherever those are installed (the dev tools bring them): about 60 ms of
  start-up and 5 MB, for a command agentdeck never runs.

Both packages treat a missing extra as "not installed" and carry on without it.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator

TELEGRAM_UNUSED = ("cryptography", "httpx._main")


@contextlib.contextmanager
def left_out(modules: tuple[str, ...]) -> Iterator[None]:
    """Within the block, importing any of `modules` fails as if it were not installed.

    A module imported already stays usable; after the block, each can be imported again.
    Use it around the import of a package whose optional extras are not wanted.
    """
    blocked = [name for name in modules if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # the import system's "absent"
    try:
        yield
    finally:
        for name in blocked:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
