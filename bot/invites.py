"""Adding people without editing files: `/invite` makes a code, `/start <code>` redeems it.

An admin's `/invite <role> [hours]` makes a one-time code (80 random bits, stored hashed,
`storage.invites`); the new person sends `/start <code>` and is added with that role,
beside `[[users]]` (which always wins for an id it lists). An invite never grants a role
above its maker's, neither when made nor when redeemed (a demoted inviter's codes stop
working). Wrong codes are counted: a person gets `USER_TRIES` per window, everyone
together `ALL_TRIES`; past that a code is not even looked up, so guessing 80 bits by
brute force is out of reach. Everything is audited; the code itself never is.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.access import Access
from bot.config import Role
from storage.audit import AuditLog
from storage.clock import Clock
from storage.db import Database
from storage.invites import InviteStore, code_hash
from storage.models import InvitedUser

DEFAULT_HOURS = 24
MAX_HOURS = 24 * 7
KEEP_EXPIRED = timedelta(days=7)  # expired codes are forgotten after this (they never work)
WINDOW = timedelta(minutes=15)
USER_TRIES = 5  # wrong codes one person may send per window
ALL_TRIES = 50  # wrong codes everyone together may send per window
DOES_NOT_WORK = (
    "That invite code does not work: it may be mistyped, used already or expired. "
    "Ask an admin for a new one."
)
TOO_MANY = "Too many wrong codes; wait {minutes} minutes and ask an admin to check the code."


@dataclass(frozen=True, slots=True)
class Joined:
    """A redeemed code: the person's role now."""

    role: Role
    invited_by: str


class Tries:
    """Wrong codes per person and in all, in a sliding window (in this process)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._wrong: dict[str, deque[datetime]] = defaultdict(deque)
        self._all: deque[datetime] = deque()

    def blocked(self, user: str) -> bool:
        now = self._clock.now()
        for seen in (self._wrong[user], self._all):
            while seen and now - seen[0] >= WINDOW:
                seen.popleft()
        return len(self._wrong[user]) >= USER_TRIES or len(self._all) >= ALL_TRIES

    def wrong(self, user: str) -> None:
        now = self._clock.now()
        self._wrong[user].append(now)
        self._all.append(now)


class Invites:
    def __init__(self, *, db: Database, access: Access, audit: AuditLog, clock: Clock) -> None:
        self._store = InviteStore(db)
        self._access = access
        self._audit = audit
        self._clock = clock
        self.tries = Tries(clock)

    async def load(self) -> None:
        """Hand the people added by invite to `Access` (at start, and now and then: another
        process may have added or removed someone)."""
        rows = await self._store.users()
        self._access.set_invited({row.id: Role(row.role) for row in rows})

    async def prune(self) -> None:
        """Forget codes expired a while ago (the sweep, now and then)."""
        await self._store.prune(self._clock.now() - KEEP_EXPIRED)

    async def create(self, by: str, by_role: Role, role: Role, hours: int) -> str:
        """A new code for `role`, valid `hours`; the caller has checked `by_role` allows it."""
        if not by_role.allows(role):
            raise PermissionError(f"an invite cannot grant {role} above your {by_role} role")
        now = self._clock.now()
        code = await self._store.create(role.value, by, now, now + timedelta(hours=hours))
        self._audit.record(by, "invite.created", code_hash(code)[:12], role=role, hours=hours)
        return code

    async def redeem(self, user: str, code: str) -> Joined | str:
        """Add `user` with the code's role, or say why not (one text for every wrong code)."""
        if self.tries.blocked(user):
            self._audit.record(user, "invite.refused", "", reason="too many wrong codes")
            return TOO_MANY.format(minutes=int(WINDOW.total_seconds() // 60))
        redeemed = await self._store.redeem(
            code, user, self._clock.now(), may_grant=self._may_grant
        )
        if redeemed is None:
            self.tries.wrong(user)
            self._audit.record(user, "invite.refused", code_hash(code)[:12], reason="no such code")
            return DOES_NOT_WORK
        await self.load()
        role = Role(redeemed.role)
        self._audit.record(
            user, "invite.used", code_hash(code)[:12], role=role, invited_by=redeemed.invited_by
        )
        return Joined(role, redeemed.invited_by)

    def _may_grant(self, role: str, inviter: str) -> bool:
        """Whether the code's maker may still give its role (their role now, not then)."""
        now = self._access.role(inviter)
        return now is not None and now.allows(Role.ADMIN) and now.allows(Role(role))

    async def remove(self, by: str, user: str) -> bool:
        removed = await self._store.remove(user)
        if removed:
            await self.load()
            self._audit.record(by, "user.removed", user)
        return removed

    async def people(self) -> list[InvitedUser]:
        return await self._store.users()

    async def open_codes(self) -> int:
        return await self._store.open_count(self._clock.now())
