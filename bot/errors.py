"""Errors the bot raises itself (the roster and storage have their own trees).

BotError(Exception)
├── ConfigError           the config file is wrong; the message names file and key
├── AccessDenied          the user's role does not allow this
└── TransportError        a chat platform refused to start or to deliver
    ├── TransportStartError   bad token, unreachable API at start
    ├── TransportDown         unreachable, or our token refused: the transport is retried
    ├── DeliveryUncertain     the request may have reached the platform; its answer was lost
    ├── RetryLater            the platform asks to wait (a flood limit); nothing was sent
    ├── Refused               the platform will not take this message (a 400): never resent
    └── FileTooLarge          a file someone sent is above `[deck] max_file_mb`

A send the outbox keeps for later is not an error: it returns `bot.types.Queued`.
"""

from __future__ import annotations


class BotError(Exception):
    pass


class ConfigError(BotError):
    pass


class AccessDenied(BotError, PermissionError):
    pass


class TransportError(BotError):
    # A long text goes as several messages: the ids of the parts that went out before
    # this error, so that the next attempt sends only the rest (`Outgoing.sent_parts`).
    parts_sent: tuple[str, ...] = ()


class TransportStartError(TransportError):
    pass


class TransportDown(TransportError):
    """The platform cannot be reached or refuses our credentials; nothing was delivered."""


class DeliveryUncertain(TransportError):
    """A send may have reached the platform (a timeout or a dropped answer after sending)."""


class RetryLater(TransportError):
    """The platform refused a send for now and says when to try again; nothing was sent."""

    def __init__(self, message: str, *, seconds: float) -> None:
        super().__init__(message)
        self.seconds = seconds


class Refused(TransportError):
    """The platform answered that it will not take this message (Telegram's 400: chat not
    found, a text it cannot parse even plain): nothing was sent, and sending the same
    message again would be refused again."""


class FileTooLarge(TransportError):
    """A file someone sent is larger than the deck takes (`[deck] max_file_mb`)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the file has {size:,} bytes; the limit is {limit:,}")
        self.size = size
        self.limit = limit
