"""Who may do what: identities from `[[users]]` and their roles."""

from __future__ import annotations

from collections.abc import Iterable

from bot.config import Role, UserEntry


class Access:
    def __init__(self, users: Iterable[UserEntry], *, console_user: str) -> None:
        self._roles = {user.id: user.role for user in users}
        self._roles.setdefault(console_user, Role.ADMIN)  # the person at the terminal

    def role(self, user: str) -> Role | None:
        return self._roles.get(user)

    def allows(self, user: str, needed: Role) -> bool:
        role = self.role(user)
        return role is not None and role.allows(needed)

    def is_approver(self, user: str, approvers: Iterable[str]) -> bool:
        """Approvers are listed by user id or by role name; admins always qualify."""
        role = self.role(user)
        if role is None:
            return False
        listed = set(approvers)
        return user in listed or role.value in listed or role is Role.ADMIN

    def users_with(self, role: Role) -> list[str]:
        return [user for user, has in self._roles.items() if has is role]
