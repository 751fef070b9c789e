"""The operator dashboard: a small web app served by the bot process itself.

Server-rendered pages (Jinja2) over the deck's services, signed in by one-time links
asked for in chat, updated live by server-sent events. Nothing to build, no
front-end framework: one small script for live updates, one stylesheet.
"""

from __future__ import annotations

from bot.dashboard.server import Dashboard

__all__ = ["Dashboard"]
