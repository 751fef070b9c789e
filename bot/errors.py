"""Errors the bot raises itself (the roster and storage have their own trees).

BotError(Exception)
├── ConfigError           the config file is wrong; the message names file and key
├── AccessDenied          the user's role does not allow this
└── TransportError        a chat platform refused to start or to deliver
    └── TransportStartError   bad token, unreachable API at start
"""

from __future__ import annotations


class BotError(Exception):
    pass


class ConfigError(BotError):
    pass


class AccessDenied(BotError, PermissionError):
    pass


class TransportError(BotError):
    pass


class TransportStartError(TransportError):
    pass
