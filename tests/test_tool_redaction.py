"""Tools scrub with one function, the one their call's context carries
(`ToolCallContext.redact`): what a child inherits and what a tool returns are checked
with it, whatever tool it is. A credential the scrubber knows, in a variable every child
would inherit (TZ here), stays out of the child; printed anyway, it comes back scrubbed."""

from __future__ import annotations

import pytest

from roster.toolkit.templated import CommandToolSpec, TemplateTool
from roster.tools import RunCommandTool, Tool, ToolCallContext

VALUE = "credential-in-tz-4711"


def scrub(text: str) -> str:
    return text.replace(VALUE, "[redacted:TZ]")


TOOLS: dict[str, tuple[Tool, dict[str, object]]] = {
    "run_command": (RunCommandTool(), {"argv": ["/bin/sh", "-c", f"env; echo {VALUE}"]}),
    "template": (
        TemplateTool(CommandToolSpec(name="t", command=("/bin/sh", "-c", f"env; echo {VALUE}"))),
        {},
    ),
}


@pytest.mark.parametrize("name", sorted(TOOLS))
async def test_a_tool_scrubs_with_its_calls_context(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", VALUE)
    tool, arguments = TOOLS[name]
    context = ToolCallContext(run_id="r", chat_id="test:chat", agent="bot", redact=scrub)
    result = await tool.call(dict(arguments), context)
    assert "PATH=" in result  # the child ran, with the allowlist
    assert "TZ=" not in result  # the inherited variable holding a credential stayed out
    assert VALUE not in result
    assert "[redacted:TZ]" in result  # what it printed came back scrubbed
