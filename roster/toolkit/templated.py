"""Tools declared in config: `[[tools]]` with an argv template and a JSON schema.

    [[tools]]
    name = "git_log"
    description = "Recent commits of a repository"
    command = ["git", "-C", "{repo}", "log", "--oneline", "-n", "{count}"]
    parameters = { type = "object", required = ["repo"], properties = {
        repo = { type = "string" }, count = { type = "integer", default = 10 } } }
    approval = "never"

No shell is involved: a part that is exactly `{name}` becomes one argument (a list
becomes several, a missing optional value none); `{name}` inside a longer part is
replaced in place. A value that starts with "-" is refused where it would stand as an
argument of its own, so a model cannot slip an option into the command line — unless a
"--" comes before it in the template, or the tool says `accept_options = true`
(`roster.options`, as for command agents).
"""

from __future__ import annotations

import json
import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import Field, model_validator

from roster.agent import Action, needs_approval
from roster.children import child_environment
from roster.options import END_OF_OPTIONS, refuse_options
from roster.spec import Policy, Strict, lift_policy_keys
from roster.toolkit.process import run_argv
from roster.toolkit.schema import check_schema, validate_schema
from roster.tools import Tool, ToolCallContext

TOOL_NAME = r"^[a-z][a-z0-9_]{0,63}$"
_WHOLE = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_EMPTY_OBJECT: dict[str, Any] = {"type": "object", "properties": {}}
_HINT = "Pass it without a leading '-'."


class CommandToolSpec(Strict):
    name: str = Field(pattern=TOOL_NAME)
    description: str = ""
    command: tuple[str, ...] = Field(min_length=1)
    parameters: dict[str, Any] = Field(default_factory=lambda: dict(_EMPTY_OBJECT))
    timeout: float = Field(default=60, gt=0)
    cwd: str | None = None
    # Values standing as arguments of their own may start with "-" (options).
    accept_options: bool = False
    policy: Policy = Policy()

    @model_validator(mode="before")
    @classmethod
    def _policy_keys_at_top_level(cls, data: object) -> object:
        return lift_policy_keys(data)

    @model_validator(mode="after")
    def _template_fits_schema(self) -> CommandToolSpec:
        check_schema(self.parameters)
        known = set(self.parameters.get("properties", {}))
        for part in self.command:
            for name in placeholders(part):
                if name not in known:
                    raise ValueError(
                        f"command uses {{{name}}}, which is not in parameters.properties"
                    )
        return self


def placeholders(part: str) -> list[str]:
    """The field names in one template part; only plain names are allowed."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(part) if name is not None]
    except ValueError as exc:
        raise ValueError(f"bad template part {part!r}: {exc}") from None
    for name in fields:
        if not name.isidentifier():
            raise ValueError(f"template part {part!r}: use plain names like {{repo}}")
    return fields


def render(
    template: Sequence[str], arguments: Mapping[str, Any], *, accept_options: bool = False
) -> tuple[str, ...]:
    """The argv for these arguments (already validated against the schema)."""
    argv: list[str] = []
    for index, part in enumerate(template):
        whole = _WHOLE.match(part)
        if whole is None:
            argv.append(part.format_map(_Text(arguments)))
            continue
        value = arguments.get(whole.group(1))
        values = value if isinstance(value, list) else [] if value is None else [value]
        texts = tuple(_as_text(item) for item in values)
        if not accept_options and END_OF_OPTIONS not in template[:index]:
            refuse_options(texts, what=f"Argument {whole.group(1)!r}", hint=_HINT)
        argv.extend(texts)
    return tuple(argv)


class _Text(dict[str, str]):
    def __init__(self, arguments: Mapping[str, Any]) -> None:
        super().__init__({k: _as_text(v) for k, v in arguments.items()})

    def __missing__(self, key: str) -> str:
        return ""


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return str(value)


class TemplateTool(Tool):
    """A `[[tools]]` entry: validated arguments in, one subprocess run, its output back."""

    def __init__(self, spec: CommandToolSpec) -> None:
        self.spec = spec
        self.name = spec.name
        self.description = spec.description or f"Runs {spec.command[0]}"
        self.parameters = spec.parameters  # type: ignore[misc]
        self.policy = spec.policy

    def validate(self, arguments: dict[str, Any]) -> None:
        validate_schema(self.parameters, arguments)
        self._argv(arguments)

    def action(self, agent: str, arguments: dict[str, Any]) -> Action:
        argv = self._argv(arguments)
        return Action(agent=agent, kind="tool", tool=self.name, argv=argv, cwd=self.spec.cwd)

    def needs_approval(self, arguments: dict[str, Any]) -> bool:
        argv = self._argv(arguments)
        return needs_approval(self.policy, argv)

    async def call(self, arguments: dict[str, Any], ctx: ToolCallContext) -> str:
        argv = self._argv(arguments)
        env = child_environment({}, redact=ctx.redact)
        return await run_argv(
            argv,
            limit=self.spec.timeout,
            env=env,
            cwd=self.spec.cwd,
            redact=ctx.redact,
            on_started=ctx.process_started,
        )

    def _argv(self, arguments: dict[str, Any]) -> tuple[str, ...]:
        filled = _with_defaults(self.parameters, arguments)
        return render(self.spec.command, filled, accept_options=self.spec.accept_options)


def _with_defaults(schema: Mapping[str, Any], arguments: Mapping[str, Any]) -> dict[str, Any]:
    """Fill in the `default` of top-level properties the model left out."""
    filled = dict(arguments)
    for name, prop in schema.get("properties", {}).items():
        if name not in filled and isinstance(prop, dict) and "default" in prop:
            filled[name] = prop["default"]
    return filled
