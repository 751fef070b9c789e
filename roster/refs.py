"""`env:NAME` and `secret:NAME` references, resolved when they are used."""

from __future__ import annotations

import os
from typing import Protocol

from roster.errors import ReferenceNotFound


class SecretSource(Protocol):
    def get(self, name: str) -> str | None:
        """Return the secret's value, or None when there is no such secret."""
        ...


class NoSecrets:
    def get(self, name: str) -> str | None:
        return None


def is_reference(value: str) -> bool:
    return value.startswith(("env:", "secret:"))


def resolve(value: str, secrets: SecretSource) -> str:
    """Return the value a reference points at; a plain value is returned as is."""
    if value.startswith("env:"):
        name = value[4:]
        found = os.environ.get(name)
        if found is None:
            raise ReferenceNotFound(
                f"The environment variable {name} is not set (used as {value!r})."
            )
        return found
    if value.startswith("secret:"):
        name = value[7:]
        secret = secrets.get(name)
        if secret is None:
            raise ReferenceNotFound(
                f"No secret named {name!r}. Set it with: agentdeck secrets set {name}"
            )
        return secret
    return value
