"""Who is looking: one-time sign-in links from chat, then a signed session cookie.

No passwords: `/dashboard` in a private chat mints a link that works once, for a few
minutes; opening it sets an HttpOnly, SameSite=Strict cookie. The role is looked up on
every request, so a config change applies at once to open sessions. Signing out ends
the session in the database, so a copy of the cookie is refused everywhere, after a
restart too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from bot.access import Access
from bot.config import DashboardSection, Role
from bot.dashboard.errors import LinkInvalid, LinkUsed, SignInRefused
from bot.dashboard.tokens import LinkClaims, Purpose, Signer, new_nonce
from storage.audit import AuditLog
from storage.clock import Clock
from storage.signin_links import RevokedSessions, UsedLinks

COOKIE = "agentdeck_session"
USED_LINKS_KEPT = timedelta(days=2)  # far beyond any link's life: older ids cannot work anyway


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in chat identity and what it may do here."""

    user: str
    chat: str
    role: Role
    session: str
    csrf: str
    expires: datetime

    def may(self, needed: Role) -> bool:
        return self.role.allows(needed)


class Auth:
    def __init__(
        self,
        *,
        signer: Signer,
        used: UsedLinks,
        revoked: RevokedSessions,
        access: Access,
        audit: AuditLog,
        clock: Clock,
        settings: DashboardSection,
    ) -> None:
        self._signer = signer
        self._used = used
        self._revoked = revoked
        self._access = access
        self._audit = audit
        self._clock = clock
        self._settings = settings

    def link(self, base_url: str, user: str, chat: str) -> str:
        """A one-time sign-in URL for this chat identity."""
        expires = self._clock.now() + timedelta(minutes=self._settings.link_minutes)
        token = self._signer.sign(LinkClaims(Purpose.LINK, user, chat, new_nonce(), expires))
        return f"{base_url}/signin?{urlencode({'t': token})}"

    def check_link(self, token: str) -> LinkClaims:
        """The link's claims if it could still sign in; it is not used up by looking."""
        claims = self._signer.open(token, Purpose.LINK, self._clock.now())
        if self._access.role(claims.user, claims.chat) is None:
            raise LinkInvalid()
        return claims

    async def redeem(self, token: str) -> tuple[LinkClaims, str]:
        """Use the link up and return the session cookie's value; raise if it cannot sign in."""
        claims = self.check_link(token)
        now = self._clock.now()
        if not await self._used.claim(claims.nonce, claims.user, now):
            raise LinkUsed()
        expires = now + timedelta(hours=self._settings.session_hours)
        session = LinkClaims(Purpose.SESSION, claims.user, claims.chat, new_nonce(), expires)
        return claims, self._signer.sign(session)

    async def viewer(self, cookie: str | None) -> Viewer | None:
        """The signed-in identity of a request, or None (no cookie, forged, expired, removed,
        signed out)."""
        if not cookie:
            return None
        try:
            claims = self._signer.open(cookie, Purpose.SESSION, self._clock.now())
        except SignInRefused:
            return None
        role = self._access.role(claims.user, claims.chat)
        if role is None or await self._revoked.is_revoked(claims.nonce):
            return None
        csrf = self._signer.csrf(claims.nonce)
        return Viewer(claims.user, claims.chat, role, claims.nonce, csrf, claims.expires)

    async def sign_out(self, viewer: Viewer) -> None:
        """End the viewer's session in every process: its cookie is refused from now on."""
        now = self._clock.now()
        await self._revoked.revoke(viewer.session, viewer.user, now, viewer.expires)
        await self._revoked.prune(now)

    def csrf_ok(self, viewer: Viewer, token: str) -> bool:
        return self._signer.csrf_ok(viewer.session, token)

    async def prune(self) -> None:
        now = self._clock.now()
        await self._used.prune(now - USED_LINKS_KEPT)
        await self._revoked.prune(now)
