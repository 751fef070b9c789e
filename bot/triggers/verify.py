"""Is a webhook delivery from who holds the trigger's secret? HMAC-SHA256 or a bearer token.

HMAC as GitHub (and most senders) sign: `X-Hub-Signature-256: sha256=<hex of
HMAC-SHA256(secret, body)>`; a bare hex digest is taken too. Compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from bot.trigger_spec import TriggerEntry, Verification

SHA256_PREFIX = "sha256="


def signature(secret: str, body: bytes) -> str:
    """The header value a sender puts on `body` (what tests and senders compute)."""
    return SHA256_PREFIX + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verified(trigger: TriggerEntry, secret: str, headers: Mapping[str, str], body: bytes) -> bool:
    if trigger.verify is Verification.BEARER:
        given = headers.get("Authorization", "")
        scheme, _, token = given.partition(" ")
        return scheme.lower() == "bearer" and _same(token.strip(), secret)
    given = headers.get(trigger.header, "").strip()
    digest = given.removeprefix(SHA256_PREFIX).lower()
    return _same(SHA256_PREFIX + digest, signature(secret, body))


def _same(given: str, expected: str) -> bool:
    return bool(given) and hmac.compare_digest(given.encode(), expected.encode())
