"""Signed tokens for sign-in links and session cookies (HMAC-SHA256, a key in the data dir).

A token is `<claims as base64url JSON>.<signature>`; the signature covers the purpose,
so a link can never stand in for a session cookie or the other way round.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path

from bot.dashboard.errors import DashboardError, LinkExpired, LinkInvalid
from storage.private import private_dir

log = logging.getLogger(__name__)

KEY_FILE = "dashboard.key"
MAX_TOKEN_CHARS = 2000


class Purpose(StrEnum):
    LINK = "link"
    SESSION = "session"


@dataclass(frozen=True, slots=True)
class LinkClaims:
    purpose: Purpose
    user: str
    chat: str  # the private chat the link was asked for in: where presses are answered
    nonce: str  # the link's id, or the session's
    expires: datetime


class Signer:
    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the dashboard key must be at least 32 bytes")
        self._key = key

    def sign(self, claims: LinkClaims) -> str:
        body = {
            "u": claims.user,
            "c": claims.chat,
            "n": claims.nonce,
            "e": int(claims.expires.timestamp()),
        }
        encoded = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{encoded}.{self._mac(claims.purpose, encoded)}"

    def open(self, token: str, purpose: Purpose, now: datetime) -> LinkClaims:
        """The claims of a token we signed for this purpose; raise if forged or expired."""
        if len(token) > MAX_TOKEN_CHARS or not token.isascii():  # ours are short base64url
            raise LinkInvalid()
        encoded, _, mac = token.partition(".")
        if not _same(mac, self._mac(purpose, encoded)):
            raise LinkInvalid()
        claims = _decode(encoded, purpose)
        if now >= claims.expires:
            raise LinkExpired()
        return claims

    def csrf(self, session: str) -> str:
        """The form token of a session: bound to it, so it cannot be guessed or carried over."""
        return hmac.new(self._key, f"csrf.{session}".encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: str, token: str) -> bool:
        return _same(token, self.csrf(session))

    def _mac(self, purpose: Purpose, encoded: str) -> str:
        digest = hmac.new(self._key, f"{purpose}.{encoded}".encode(), hashlib.sha256).digest()
        return _b64(digest)


def _same(given: str, expected: str) -> bool:
    """Constant-time comparison of what a browser sent with what we made (ASCII).

    `hmac.compare_digest` refuses `str` with characters beyond ASCII (a TypeError, which
    was a 500): compare the UTF-8 bytes instead, which simply differ.
    """
    return hmac.compare_digest(given.encode("utf-8", "surrogatepass"), expected.encode())


def new_nonce() -> str:
    return secrets.token_urlsafe(18)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _decode(encoded: str, purpose: Purpose) -> LinkClaims:
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        body = json.loads(raw)
        return LinkClaims(
            purpose=purpose,
            user=str(body["u"]),
            chat=str(body["c"]),
            nonce=str(body["n"]),
            expires=datetime.fromtimestamp(int(body["e"]), tz=UTC),
        )
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise LinkInvalid() from None  # signed by us but unreadable: treat as forged


def load_key(data_dir: Path) -> bytes:
    """The signing key from `dashboard.key` (mode 0600), created on first use. Blocking I/O."""
    path = private_dir(data_dir) / KEY_FILE
    try:
        # O_EXCL: two processes starting at once must not each write their own key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_key(path)
    with os.fdopen(fd, "w", encoding="ascii") as out:
        key = secrets.token_bytes(32)
        out.write(key.hex() + "\n")
    log.info("created the dashboard signing key %s", path)
    return key


def _read_key(path: Path) -> bytes:
    try:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError) as exc:
        raise DashboardError(
            f"{path} cannot be read as the dashboard key ({exc}); delete it and start again "
            "(open sessions and links end)."
        ) from None
    if len(key) < 32:
        raise DashboardError(f"{path} holds too short a key; delete it and start again.")
    return key
