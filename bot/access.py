"""Who may do what: identities from `[[users]]` (and people added by invite) and their roles.

`[[users]]` wins over an invite for the same id; a chat's role (`channel_members`) only
raises a member's role. `display()` is how cards and messages name a person.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from bot.config import Role, UserEntry


class Access:
    def __init__(
        self,
        users: Iterable[UserEntry],
        *,
        console_user: str,
        chat_roles: Mapping[str, Role] | None = None,
    ) -> None:
        self._invited: dict[str, Role] = {}
        self.replace(users, console_user=console_user, chat_roles=chat_roles)

    def replace(
        self,
        users: Iterable[UserEntry],
        *,
        console_user: str,
        chat_roles: Mapping[str, Role] | None = None,
    ) -> None:
        """Swap in new users and roles (a config reload), in place: every holder sees it."""
        users = list(users)
        roles = {user.id: user.role for user in users}
        roles.setdefault(console_user, Role.ADMIN)  # the person at the terminal
        self._listed, self._chat_roles = roles, dict(chat_roles or {})
        self._names = {user.id: user.name for user in users if user.name}
        self._merge()

    def set_invited(self, invited: Mapping[str, Role]) -> None:
        """The people added by invite (the database's list), in place."""
        self._invited = dict(invited)
        self._merge()

    def _merge(self) -> None:
        self._roles = {**self._invited, **self._listed}  # `[[users]]` wins

    def is_listed(self, user: str) -> bool:
        """Whether `[[users]]` names this person (an invite cannot change their role)."""
        return user in self._listed

    def display(self, user: str) -> str:
        """`Ada (telegram:1001)` for a person `[[users]]` names, else the id alone."""
        name = self._names.get(user)
        return f"{name} ({user})" if name else user

    def role(self, user: str, chat: str | None = None) -> Role | None:
        """The user's role; in a chat that grants one to its members, the higher of the two."""
        listed = self._roles.get(user)
        granted = self._chat_roles.get(chat or "")
        # Only people of the chat's own platform can be its members.
        if granted is None or not user.startswith(str(chat).partition(":")[0] + ":"):
            return listed
        return granted if listed is None or granted.rank > listed.rank else listed

    def admits(self, user: str, chat: str, outsider: str = "") -> bool:
        """Whether the user may be served in this chat at all: the one check every entry
        point makes before it acts on, echoes or remembers anything of theirs.

        `outsider` is why the transport found the person outside our workspace (another
        Slack team, a guest); a chat's role is not for them, only `[[users]]` can give one.
        """
        if outsider and user not in self._roles:
            return False
        return self.role(user, chat) is not None

    def only_by_chat(self, user: str, chat: str) -> bool:
        """Whether the user's role here comes from writing in the chat alone (not listed)."""
        return user not in self._roles and self.role(user, chat) is not None

    def allows(self, user: str, needed: Role) -> bool:
        role = self.role(user)
        return role is not None and role.allows(needed)

    def is_approver(self, user: str, approvers: Iterable[str], chat: str | None = None) -> bool:
        """Approvers are listed by user id or by role name; only those listed count
        (the default list is `["admin"]`)."""
        role = self.role(user, chat)
        if role is None:
            return False
        listed = set(approvers)
        return user in listed or role.value in listed

    def users_with(self, role: Role) -> list[str]:
        return [user for user, has in self._roles.items() if has is role]
