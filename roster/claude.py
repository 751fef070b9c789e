"""The Claude Code agent (`kind = "claude"`): the official SDK driving the `claude` CLI.

Each chat (each Slack thread) has its own session with the agent, resumed by id from the
database (`storage.sessions`), so a follow-up continues the conversation after a restart
too. A turn starts the CLI (`--resume <id>`), sends the message and reads its messages:
tool uses become progress lines (`Bash: npm test`), a permission prompt becomes an
approval card the live run waits on (`RunContext.ask`), and the result's usage and cost
are counted. The only module that imports `claude_agent_sdk`.

The CLI gets no more of the bot's environment than any child (`roster.launcher`): the
SDK adds the bot's whole environment under what it is given, so the command it runs is
prefixed with `env -u` for every other variable, and `setsid` (a group of its own, which
a stop and the next start after a crash can kill whole).
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, ClaudeSDKError, ResultError
from claude_agent_sdk._internal.transport.subprocess_cli import SubprocessCLITransport
from claude_agent_sdk.types import (
    AssistantMessage,
    PermissionResultAllow,
    PermissionResultDeny,
    ResultMessage,
    SystemMessage,
    ToolPermissionContext,
    ToolUseBlock,
)

from roster.agent import (
    CLI_TOOL,
    Action,
    Agent,
    AgentRequest,
    Finished,
    NeedsApproval,
    Outcome,
    RunContext,
    Usage,
)
from roster.children import stop_tree
from roster.errors import AgentFailed
from roster.launcher import QUIET, agent_environment, env_program, setsid_program, unset_others
from roster.process_tree import kill
from roster.progress_lines import ProgressLines
from roster.refs import SecretSource
from roster.run_files import OUTBOX_VARIABLE, extra_dirs, outbox_note
from roster.spec import ClaudeAgentSpec
from roster.tail import ScrubbedTail
from storage.sessions import AgentSessions, TurnReport, chat_key

STOP_GRACE_SECONDS = 3.0
KEPT_INPUT_CHARS = 4000  # of an edit's text, on the card
KEPT_STDERR_CHARS = 4000


class ClaudeAgent(Agent):
    spec: ClaudeAgentSpec

    def __init__(
        self, spec: ClaudeAgentSpec, *, secrets: SecretSource, sessions: AgentSessions
    ) -> None:
        self.spec = spec
        self._secrets = secrets
        self._sessions = sessions

    async def preview(self, action: Action) -> str:
        """An edit's change as a short diff, a file's new text: what the card shows below."""
        return edit_preview(action.arguments)

    async def start(self, request: AgentRequest, ctx: RunContext) -> Outcome:
        where = chat_key(request.chat_id, request.thread)
        known = await self._sessions.get(where, self.name)
        await ctx.before_model_call()  # a spent budget stops the turn before it starts
        await ctx.before_effect()
        resume = known.session_id if known else None
        try:
            result = await self._turn(request, resume, where, ctx)
        except ResultError as exc:
            if resume is None or "No conversation found" not in str(exc):
                raise AgentFailed(f"Claude Code failed: {exc}") from None
            known, result = None, await self._turn(request, None, where, ctx)  # files gone
        previous = known.cost_total if known and known.session_id == result.session_id else 0.0
        usage = _usage(result, previous)
        ctx.spent(usage)
        report = TurnReport(
            session_id=result.session_id,
            cost=usage.cost,
            cost_total=result.total_cost_usd or 0.0,
            tokens_in=(known.tokens_in if known else 0) + usage.tokens_in,
            tokens_out=(known.tokens_out if known else 0) + usage.tokens_out,
        )
        await self._sessions.record(where, self.name, report)
        text = result.result or ""
        if result.is_error and not text:
            text = f"Claude Code stopped: {result.subtype}."
        return Finished(text, ok=not result.is_error, usage=usage)

    async def _turn(
        self, request: AgentRequest, resume: str | None, where: str, ctx: RunContext
    ) -> ResultMessage:
        errors = ScrubbedTail(KEPT_STDERR_CHARS, self._secrets.redact)
        options = self._options(resume, ctx, request, stderr=lambda line: errors.add(line + "\n"))
        transport = AllowlistTransport(options, keep=dict(options.env))
        client = ClaudeSDKClient(options, transport=transport)
        lines = ProgressLines()
        finished = False
        try:
            async with asyncio.timeout(self.spec.timeout):
                await client.connect()
                if transport.pid is not None:
                    ctx.process_started(transport.pid)
                await client.query(request.text)  # with a line naming each attached file
                async for message in client.receive_response():
                    if isinstance(message, SystemMessage) and message.subtype == "init":
                        session_id = str(message.data.get("session_id") or "")
                        if session_id and session_id != resume:
                            await self._sessions.begin(where, self.name, session_id)
                    if isinstance(message, AssistantMessage):
                        await _show_tools(message, lines, ctx)
                    if isinstance(message, ResultMessage):
                        finished = True
                        return message
        except TimeoutError:
            raise AgentFailed(f"Claude Code took longer than {self.spec.timeout:g} s.") from None
        except ClaudeSDKError as exc:
            if isinstance(exc, ResultError):
                raise
            said = errors.text().strip().splitlines() or [str(exc)]
            raise AgentFailed(f"Claude Code failed: {said[-1][:300]}") from None
        finally:
            await asyncio.shield(_close(client, transport, cut=not finished))
        raise AgentFailed("Claude Code ended without a result.")

    def _options(
        self,
        resume: str | None,
        ctx: RunContext,
        request: AgentRequest,
        *,
        stderr: Callable[[str], None],
    ) -> ClaudeAgentOptions:
        spec = self.spec
        env = {**QUIET, **agent_environment(spec.env, self._secrets)}
        if request.outbox is not None:
            env[OUTBOX_VARIABLE] = request.outbox
        append = "\n\n".join(
            part for part in (spec.instructions, outbox_note(request.outbox)) if part
        )
        return ClaudeAgentOptions(
            cwd=spec.cwd,
            cli_path=spec.cli,
            model=spec.model,
            system_prompt={"type": "preset", "preset": "claude_code", "append": append}
            if append
            else None,
            add_dirs=list(extra_dirs(request)),  # the message's files, the run's outbox
            allowed_tools=list(spec.allowed_tools),
            disallowed_tools=list(spec.disallowed_tools),
            permission_mode=spec.permission_mode,
            max_turns=spec.max_turns,
            mcp_servers=dict(spec.mcp_servers),  # type: ignore[arg-type]
            env=env,
            resume=resume,
            setting_sources=[],  # no settings file (the repo's own included) approves a tool
            # bypassPermissions asks no one: a callback would never be called.
            can_use_tool=None if spec.permission_mode == "bypassPermissions" else self._asker(ctx),
            stderr=stderr,  # kept (scrubbed) to say why the CLI failed
        )

    def _asker(self, ctx: RunContext) -> Any:
        async def can_use_tool(
            tool: str, tool_input: dict[str, Any], _context: ToolPermissionContext
        ) -> PermissionResultAllow | PermissionResultDeny:
            action = Action(
                agent=self.name,
                kind=CLI_TOOL,
                tool=tool,
                cwd=self.spec.cwd,
                arguments=card_input(tool_input),
            )
            decision = await ctx.ask(
                NeedsApproval(action=action, policy=self.spec.policy, state={})
            )
            if decision.approved:
                return PermissionResultAllow()
            said = f"Denied by {decision.by}"
            return PermissionResultDeny(message=decision.reason or f"{said}.")

        return can_use_tool


class AllowlistTransport(SubprocessCLITransport):
    """The SDK's transport, its CLI started with only the agent's environment (`env -u`)
    and in a process group of its own (`setsid`), so a stop can end all of it.

    `SubprocessCLITransport` is internal to the SDK: the `claude` extra pins its version,
    and tests/test_claude_agent.py reads the CLI's environment to hold this to it.
    """

    def __init__(self, options: ClaudeAgentOptions, *, keep: dict[str, str]) -> None:
        # The client routes permission prompts over stdio only for its own transport.
        if options.can_use_tool is not None:
            options = replace(options, permission_prompt_tool_name="stdio")
        super().__init__(_no_prompt(), options)
        self._keep = keep

    def _build_command(self) -> list[str]:
        command = super()._build_command()
        setsid = setsid_program()
        prefix = [env_program(), *unset_others(self._keep)]
        return [*prefix, *([setsid] if setsid else []), *command]

    @property
    def pid(self) -> int | None:
        process = self._process
        return None if process is None else int(process.pid)


async def _close(client: ClaudeSDKClient, transport: AllowlistTransport, *, cut: bool) -> None:
    """End the turn's CLI: after a result, as the SDK does (stdin closed, it exits); a turn
    cut short (/stop, a timeout): its interrupt first, then TERM, then KILL of all it started."""
    process = transport._process  # the SDK offers no other handle
    if process is not None and process.returncode is None and cut:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(STOP_GRACE_SECONDS):
                await client.interrupt()
        # Its Bash commands run in sessions of their own: the whole tree is stopped.
        await stop_tree(process.pid, process.wait, STOP_GRACE_SECONDS)
    with contextlib.suppress(Exception):
        async with asyncio.timeout(STOP_GRACE_SECONDS * 2):
            await client.disconnect()
    if process is not None and process.returncode is None:  # nothing of it outlives the turn
        await asyncio.to_thread(kill, process.pid)


async def _no_prompt() -> AsyncIterator[dict[str, Any]]:
    return
    yield {}  # an async generator that yields nothing: prompts go through `query`


async def _show_tools(message: AssistantMessage, lines: ProgressLines, ctx: RunContext) -> None:
    for block in message.content:
        if isinstance(block, ToolUseBlock):
            lines.add(tool_line(block.name, block.input))
            await ctx.progress(lines.text())


def tool_line(tool: str, tool_input: dict[str, Any]) -> str:
    """`Bash: npm test`, `Edit: src/app.py`: one line of progress per tool use."""
    for key in ("command", "file_path", "path", "pattern", "url", "query", "description"):
        value = tool_input.get(key)
        if isinstance(value, str) and value:
            return f"{tool}: {' '.join(value.split())}"
    return tool


def card_input(tool_input: dict[str, Any]) -> dict[str, Any]:
    """A tool's input as the card keeps it: whole for a command, long texts cut."""
    return {key: _cut(value) for key, value in tool_input.items()}


def _cut(value: Any) -> Any:
    if isinstance(value, str) and len(value) > KEPT_INPUT_CHARS:
        return value[:KEPT_INPUT_CHARS] + "…"
    return value


def edit_preview(arguments: dict[str, Any]) -> str:
    """A unified diff of an Edit (old → new), or the head of a Write's content."""
    old, new = arguments.get("old_string"), arguments.get("new_string")
    if isinstance(old, str) and isinstance(new, str):
        diff = difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=2)
        return "\n".join(list(diff)[2:])
    content = arguments.get("content")
    return content if isinstance(content, str) else ""


def _usage(result: ResultMessage, previous_total: float) -> Usage:
    """This turn's tokens (the result counts the turn) and cost (it reports the session's
    running total: the turn's is the difference from the last one stored)."""
    usage = result.usage or {}
    tokens_in = int(usage.get("input_tokens", 0)) + int(usage.get("cache_read_input_tokens", 0))
    tokens_in += int(usage.get("cache_creation_input_tokens", 0))
    cost = max((result.total_cost_usd or 0.0) - previous_total, 0.0)
    return Usage(tokens_in, int(usage.get("output_tokens", 0)), cost)
