"""Errors of the dashboard.

DashboardError(BotError)
├── DashboardStartError        cannot listen on the configured address
└── SignInRefused(PermissionError)   a sign-in link or session that does not hold
    ├── LinkInvalid            not one of ours: malformed, forged, or for something else
    ├── LinkExpired            older than [dashboard] link_minutes
    └── LinkUsed               each link works once
"""

from __future__ import annotations

from bot.errors import BotError


class DashboardError(BotError):
    pass


class DashboardStartError(DashboardError):
    def __init__(self, address: str, reason: str) -> None:
        super().__init__(
            f"The dashboard cannot listen on {address}: {reason}. "
            "Change [dashboard] listen/port, or stop what uses it."
        )


class SignInRefused(DashboardError, PermissionError):
    """The message is shown on the page: short, and says what to do next."""


class LinkInvalid(SignInRefused):
    def __init__(self) -> None:
        super().__init__("This sign-in link is not valid. Send /dashboard in chat for a new one.")


class LinkExpired(SignInRefused):
    def __init__(self) -> None:
        super().__init__("This sign-in link has expired. Send /dashboard in chat for a new one.")


class LinkUsed(SignInRefused):
    def __init__(self) -> None:
        super().__init__(
            "This sign-in link was used already; each link works once. "
            "Send /dashboard in chat for a new one."
        )
