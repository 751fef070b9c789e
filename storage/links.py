"""Dashboard sign-in links already used: a link id is claimed once, by one insert."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete
from sqlmodel import col

from storage.db import Database
from storage.models import DashboardLink


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
