"""Idempotency keys for outgoing messages: the update (or run) being handled, plus a count.

Handling an update opens a scope named by its inbox key; each message sent within it
(in the task or in tasks it spawns) takes the next number: `telegram:812#1`, `#2`, …
When the same update is handled again after a crash, its messages get the same keys,
so the outbox finds the ones already sent. Outside any scope a key is random: such a
message is still kept until delivered, but is not recognised if its work runs twice.
"""

from __future__ import annotations

import itertools
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field

_scope: ContextVar[Scope | None] = ContextVar("send_scope", default=None)


@dataclass(slots=True)
class Scope:
    name: str
    replayed: bool = False  # handled before: look for each key before sending
    numbers: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


def open_scope(name: str | None, *, replayed: bool = False) -> None:
    """Number the messages sent from here on (in this task and its children) under `name`."""
    _scope.set(Scope(name, replayed) if name else None)


def replaying() -> bool:
    """Whether the work in hand was handled before (its messages may be out already)."""
    scope = _scope.get()
    return scope is not None and scope.replayed


def next_key() -> str:
    scope = _scope.get()
    if scope is None:
        return f"once:{uuid.uuid4().hex}"
    return f"{scope.name}#{next(scope.numbers)}"
