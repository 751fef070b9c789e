"""Dashboard sign-in: links already used (a link id is claimed once, by one insert), and
sessions ended by signing out (kept until the session would have expired anyway).

Both live in the database, not in a process: a restart must not bring a used link or an
ended session back, and with several processes every one of them must refuse it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlmodel import col, func, select

from storage.db import Database
from storage.models import DashboardLink, RevokedSession


class UsedLinks:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def claim(self, link_id: str, user: str, now: datetime) -> bool:
        """Record the link as used; False when it was used before (here or by another process)."""
        insert = self._db.insert
        statement = (
            insert(DashboardLink)
            .values(id=link_id, user_id=user, used_at=now)
            .on_conflict_do_nothing()
            .returning(col(DashboardLink.id))
        )
        async with self._db.session() as session:
            won = (await session.exec(statement)).first() is not None
            await session.commit()
        return won

    async def prune(self, before: datetime) -> None:
        """Forget links used before `before`: they expired long ago and cannot work again."""
        async with self._db.session() as session:
            await session.exec(delete(DashboardLink).where(col(DashboardLink.used_at) < before))
            await session.commit()


class RevokedSessions:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def revoke(self, session_id: str, user: str, now: datetime, expires: datetime) -> None:
        """End a session for good (idempotent): its cookie no longer signs anyone in."""
        statement = (
            self._db.insert(RevokedSession)
            .values(id=session_id, user_id=user, revoked_at=now, expires_at=expires)
            .on_conflict_do_nothing()
        )
        async with self._db.session() as session:
            await session.exec(statement)
            await session.commit()

    async def is_revoked(self, session_id: str) -> bool:
        query = select(RevokedSession.id).where(RevokedSession.id == session_id)
        async with self._db.session() as session:
            return (await session.exec(query)).first() is not None

    async def prune(self, now: datetime) -> None:
        """Forget sessions past their expiry: their cookies are refused for that anyway."""
        async with self._db.session() as session:
            await session.exec(delete(RevokedSession).where(col(RevokedSession.expires_at) <= now))
            await session.commit()

    async def count(self) -> int:
        async with self._db.session() as session:
            return int((await session.exec(select(func.count()).select_from(RevokedSession))).one())
