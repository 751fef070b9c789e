"""`env:NAME` and `secret:NAME` references, resolved when they are used."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Protocol

from roster.errors import ReferenceNotFound, SecretNotAllowed


class SecretSource(Protocol):
    def get(self, name: str) -> str | None:
        """Return the secret's value, or None when there is no such secret."""
        ...

    def redact(self, text: str) -> str:
        """Return `text` with every known secret's value replaced by a marker."""
        ...


class NoSecrets:
    def get(self, name: str) -> str | None:
        return None

    def redact(self, text: str) -> str:
        return text


class AllowedSecrets:
    """The secrets one agent may use: only the names in its `secrets` list."""

    def __init__(self, source: SecretSource, *, agent: str, allowed: Iterable[str]) -> None:
        self._source = source
        self._agent = agent
        self._allowed = frozenset(allowed)

    def get(self, name: str) -> str | None:
        if name not in self._allowed:
            raise SecretNotAllowed(self._agent, name)
        return self._source.get(name)

    def redact(self, text: str) -> str:
        return self._source.redact(text)


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
        return resolve_secret(value[7:], secrets)
    return value


def resolve_secret(name: str, secrets: SecretSource) -> str:
    secret = secrets.get(name)
    if secret is None:
        raise ReferenceNotFound(
            f"No secret named {name!r}. Set it with: agentdeck secrets set {name}"
        )
    return secret


def resolve_arguments(value: Any, secrets: SecretSource) -> Any:
    """Replace every `secret:NAME` string in tool arguments, at any depth, by its value.

    Only `secret:` is resolved here: tool arguments are written by a model, and an
    `env:` reference would let it read any variable of this process.
    """
    if isinstance(value, str):
        return resolve_secret(value[7:], secrets) if value.startswith("secret:") else value
    if isinstance(value, list):
        return [resolve_arguments(item, secrets) for item in value]
    if isinstance(value, dict):
        return {key: resolve_arguments(item, secrets) for key, item in value.items()}
    return value


def secret_references(value: Any) -> list[str]:
    """The secret names a call's arguments refer to, found as `resolve_arguments` finds them."""
    if isinstance(value, str):
        return [value[7:]] if value.startswith("secret:") else []
    if isinstance(value, list):
        return [name for item in value for name in secret_references(item)]
    if isinstance(value, dict):
        return [name for item in value.values() for name in secret_references(item)]
    return []


def secret_names(values: Iterable[str]) -> list[str]:
    """The secret names that `secret:NAME` references among `values` point at."""
    return [value[7:] for value in values if value.startswith("secret:")]
