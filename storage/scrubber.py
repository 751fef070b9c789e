"""One scrubber for every secret value the bot knows, in every spelling it shows up in.

What it knows, by label: the vault's values (by secret name), the master key(s)
(`env:AGENTDECK_MASTER_KEY` or `file:master.key`) and every credential the bot read
from its environment (`env:TELEGRAM_BOT_TOKEN`, the model's API key, the `env:` values
of agents' `env` tables...). Labels of the latter hold a colon, which no vault name
does. Everything shown, logged or stored passes `redact` first: chat, logs, runs,
tool calls, memory, audit rows, what a model reads.

A value is found as it is, stripped of surrounding blanks, as the body of a JSON
string (escaped to ASCII or not), as the body of a Python repr, and line by line when
it spans lines of at least `MIN_LINE_CHARS` (a PEM key re-wrapped by some output). A
value shorter than `MIN_VALUE_CHARS` once stripped is not scrubbed at all: it could
not be told from ordinary words (the vault refuses to store one).

`seal` keeps what must be executed later without storing a value: each occurrence
becomes a reference (`{"$sealed": ["deploy ", ["DEPLOY_TOKEN", "value"], ""]}`) that
`unseal` turns back into the value the label has then. Text a user typed that merely
looks like a marker stays text, and a dict someone made to look like a reference is
wrapped (`$dict`) and comes back as it was: only the scrubber writes references.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from storage.errors import SecretGone

MIN_VALUE_CHARS = 4
MIN_LINE_CHARS = 12
SEALED = "$sealed"
ESCAPED = "$dict"  # wraps a dict that has a key of these two itself: not a reference
CREDENTIALS = "credentials"  # the source of what `add` is told

Redact = Callable[[str], str]

_SPELLINGS: dict[str, Callable[[str], str]] = {
    "value": lambda value: value,
    "stripped": str.strip,
    "json": lambda value: json.dumps(value, ensure_ascii=False)[1:-1],
    "ascii": lambda value: json.dumps(value)[1:-1],
    "repr": lambda value: repr(value)[1:-1],
}


def scrubbable(value: str) -> bool:
    """Whether a value is long enough to be scrubbed without eating ordinary words."""
    return len(value.strip()) >= MIN_VALUE_CHARS


def spell(value: str, spelling: str) -> str:
    """`value` written the way `spelling` names (`json`, `line:2`...)."""
    if spelling.startswith("line:"):
        return value.splitlines()[int(spelling[5:])].strip()
    return _SPELLINGS[spelling](value)


def marker(label: str) -> str:
    return f"[redacted:{label}]"


@dataclass(frozen=True, slots=True)
class _Table:
    """Every spelling of every value, and one pattern that finds them (longest first)."""

    pattern: re.Pattern[str] | None
    fragments: Mapping[str, tuple[str, str]]  # text -> (label, spelling)

    @classmethod
    def of(cls, values: Mapping[str, str]) -> _Table:
        fragments: dict[str, tuple[str, str]] = {}
        for label, value in values.items():
            for spelling in _SPELLINGS:
                fragments.setdefault(spell(value, spelling), (label, spelling))
            for index, line in enumerate(value.splitlines()):
                if len(line.strip()) >= MIN_LINE_CHARS:
                    fragments.setdefault(line.strip(), (label, f"line:{index}"))
        ordered = sorted(fragments, key=len, reverse=True)
        pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        return cls(pattern, fragments)


class Scrubber:
    """Scrubs text of every known value; seals and unseals values kept for later."""

    def __init__(self) -> None:
        self._sources: dict[str, dict[str, str]] = {}  # source -> label -> value
        self._table = _Table(None, {})

    def use(self, source: str, values: Mapping[str, str]) -> None:
        """Replace what one source (the vault, the master key) holds."""
        self._sources[source] = {k: v for k, v in values.items() if scrubbable(v)}
        self._rebuild()

    def add(self, label: str, value: str) -> bool:
        """Know one more credential; False (and not scrubbed) when it is too short."""
        if not scrubbable(value):
            return False
        known = self._sources.setdefault(CREDENTIALS, {})
        if known.get(label) != value:
            known[label] = value
            self._rebuild()
        return True

    def value(self, label: str) -> str | None:
        for values in self._sources.values():
            if label in values:
                return values[label]
        return None

    def redact(self, text: str) -> str:
        """`text` with every known value replaced by `[redacted:LABEL]`."""
        table = self._table  # one read: another thread may swap it meanwhile
        if table.pattern is None or not text:
            return text
        return table.pattern.sub(lambda m: marker(table.fragments[m.group(0)][0]), text)

    def redact_tree(self, value: Any) -> Any:
        """A JSON-like structure with every string (keys too) scrubbed."""
        return redact_tree(value, self.redact)

    def seal(self, value: Any) -> Any:
        """A JSON-like structure with every value found replaced by a reference to it."""
        table = self._table
        if table.pattern is None:
            return value
        return _seal(value, table, self.redact)

    def unseal(self, value: Any) -> Any:
        """What `seal` took, with each reference replaced by the value its label has now.

        Raises `SecretGone` when a label is no longer known (a secret deleted meanwhile).
        """
        if isinstance(value, dict):
            if len(value) == 1 and isinstance(value.get(SEALED), list):
                return "".join(self._part(part) for part in value[SEALED])
            if len(value) == 1 and isinstance(value.get(ESCAPED), dict):
                value = value[ESCAPED]
            return {key: self.unseal(item) for key, item in value.items()}
        if isinstance(value, list):
            return [self.unseal(item) for item in value]
        return value

    def _part(self, part: Any) -> str:
        if isinstance(part, str):
            return part
        label, spelling = part
        value = self.value(label)
        if value is None:
            raise SecretGone(label)
        return spell(value, spelling)

    def _rebuild(self) -> None:
        merged: dict[str, str] = {}
        for values in self._sources.values():
            for label, value in values.items():
                merged.setdefault(label, value)
        self._table = _Table.of(merged)


def redact_tree(value: Any, redact: Redact) -> Any:
    """Scrub every string of a JSON-like structure (dict keys too), before it is serialised.

    Shaped as `json.loads(json.dumps(value, default=str))` would shape it: tuples become
    lists, other objects their `str`. Scrubbing the serialised text instead misses every
    value that JSON escapes (non-ASCII, quotes, backslashes).
    """
    return _walk(value, redact)


def _walk(value: Any, redact: Redact) -> Any:
    if isinstance(value, str):
        return redact(value)
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, dict):
        return {redact(str(k)): _walk(item, redact) for k, item in value.items()}
    if isinstance(value, list | tuple):
        return [_walk(item, redact) for item in value]
    return redact(str(value))


def _seal(value: Any, table: _Table, redact: Redact) -> Any:
    if isinstance(value, str):
        return _sealed(value, table)
    if isinstance(value, dict):
        sealed = {redact(str(k)): _seal(item, table, redact) for k, item in value.items()}
        return {ESCAPED: sealed} if SEALED in sealed or ESCAPED in sealed else sealed
    if isinstance(value, list | tuple):
        return [_seal(item, table, redact) for item in value]
    return value


def _sealed(text: str, table: _Table) -> str | dict[str, list[Any]]:
    assert table.pattern is not None
    parts: list[Any] = []
    last = 0
    for match in table.pattern.finditer(text):
        parts += [text[last : match.start()], list(table.fragments[match.group(0)])]
        last = match.end()
    if not parts:
        return text
    return {SEALED: [*parts, text[last:]]}
