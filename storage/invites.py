"""Invites: one-time pairing codes and the people they added, beside `[[users]]`.

A code is kept only as its SHA-256 (the code holds 80 random bits: a hash of it cannot be
turned back, and no salt is needed against a dictionary). Redeeming is one
compare-and-set, `used_at IS NULL AND expires_at > now`, in the same transaction that adds
the person: a code works once, even with two processes reading it at the same instant.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, update
from sqlmodel import col, select

from storage.db import Database
from storage.models import Invite, InvitedUser

CODE_BYTES = 10  # 80 bits
_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # 32 symbols, none mistaken for another


def new_code() -> str:
    """A fresh code, as people type it: `k7qm-4xwp-9tra-2hzd` (16 symbols of 5 bits)."""
    number = int.from_bytes(secrets.token_bytes(CODE_BYTES), "big")
    symbols = [_ALPHABET[(number >> (5 * i)) & 31] for i in range(CODE_BYTES * 8 // 5)]
    return "-".join("".join(symbols[i : i + 4]) for i in range(0, len(symbols), 4))


def normalised(code: str) -> str:
    """What was typed, without case, dashes and spaces (a code copied from a chat)."""
    return "".join(c for c in code.lower() if c.isalnum())


def code_hash(code: str) -> str:
    return hashlib.sha256(normalised(code).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Redeemed:
    """A code that worked: the role it gave, and who made it."""

    role: str
    invited_by: str


class InviteStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, role: str, by: str, now: datetime, expires: datetime) -> str:
        """Store a new code's hash; the code itself, to show once."""
        code = new_code()
        row = Invite(
            id=code_hash(code), role=role, created_by=by, created_at=now, expires_at=expires
        )
        async with self._db.session() as session:
            session.add(row)
            await session.commit()
        return code

    async def redeem(
        self, code: str, user: str, now: datetime, *, may_grant: Callable[[str, str], bool]
    ) -> Redeemed | None:
        """Use the code up for `user` and add them with its role; None when it does not work
        (unknown, used, expired, or `may_grant(role, inviter)` says the inviter may no longer
        give that role: then the code is left as it was)."""
        claim = (
            update(Invite)
            .where(col(Invite.id) == code_hash(code))
            .where(col(Invite.used_at).is_(None))
            .where(col(Invite.expires_at) > now)
            .values(used_by=user, used_at=now)
            .returning(col(Invite.role), col(Invite.created_by))
        )
        async with self._db.session() as session:
            won = (await session.exec(claim)).first()
            if won is None:
                await session.rollback()
                return None
            role, by = won
            if not may_grant(str(role), str(by)):
                await session.rollback()
                return None
            upsert = self._db.insert(InvitedUser).values(
                id=user, role=role, invited_by=by, added_at=now
            )
            upsert = upsert.on_conflict_do_update(
                index_elements=[col(InvitedUser.id)],
                set_={"role": role, "invited_by": by, "added_at": now},
            )
            await session.exec(upsert)
            await session.commit()
        return Redeemed(role=str(role), invited_by=str(by))

    async def users(self) -> list[InvitedUser]:
        async with self._db.session() as session:
            query = select(InvitedUser).order_by(col(InvitedUser.added_at))
            return list((await session.exec(query)).all())

    async def remove(self, user: str) -> bool:
        """Remove someone added by invite; False when no invite added them."""
        statement = delete(InvitedUser).where(col(InvitedUser.id) == user)
        async with self._db.session() as session:
            result = await session.exec(statement)
            await session.commit()
        return bool(result.rowcount)

    async def open_count(self, now: datetime) -> int:
        """Codes not used and not expired."""
        query = select(Invite.id).where(col(Invite.used_at).is_(None), Invite.expires_at > now)
        async with self._db.session() as session:
            return len((await session.exec(query)).all())

    async def prune(self, before: datetime) -> None:
        """Forget codes that expired before `before` (used or not: they cannot work again)."""
        async with self._db.session() as session:
            await session.exec(delete(Invite).where(col(Invite.expires_at) < before))
            await session.commit()
