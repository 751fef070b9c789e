"""A trigger's input template over a JSON body: `"Triage: {alert.title}"`.

A field is a dotted path into the body (`{alert.labels.severity}`, `{commits.0.id}` for
a list's item); `{{` and `}}` are literal braces. Text fields go in as they are, other
values as JSON. A path the body lacks is a `MissingField`, answered 400 with its name:
the sender learns what to send, and no run starts on half an input.
"""

from __future__ import annotations

import json
import re

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_PATH = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")


class TemplateError(ValueError):
    """The template itself is wrong (a config error)."""


class MissingField(LookupError):
    def __init__(self, path: str) -> None:
        super().__init__(f"the body has no field {path!r}, which the trigger's input names")
        self.path = path


def fields(template: str) -> list[str]:
    """The field paths a template names; `TemplateError` for a stray brace or a bad path."""
    found: list[str] = []
    for match in _TOKEN.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        path = match.group(1)
        if path is None or not _PATH.match(path):
            raise TemplateError(
                f"input: {token!r} is not a field: write {{a.b}} for a field of the body, "
                "{{ or }} for a brace"
            )
        found.append(path)
    return found


def render(template: str, body: object) -> str:
    """The template with each field replaced by the body's value; `MissingField` if absent."""

    def value(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        found = lookup(body, match.group(1))
        return found if isinstance(found, str) else json.dumps(found, ensure_ascii=False)

    return _TOKEN.sub(value, template)


def lookup(body: object, path: str) -> object:
    node = body
    for part in path.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            raise MissingField(path)
    return node
