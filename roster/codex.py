"""The Codex agent (`kind = "codex"`): OpenAI's Codex CLI, one `codex exec --json` per turn.

Each chat (each Slack thread) has its own Codex thread with the agent; a follow-up runs
`codex exec resume <thread id>`. Its JSON events become progress lines (a command, a
file change) and the answer; `turn.completed` counts the whole thread's tokens, so the
turn's own are the difference from the totals stored with the session. Codex reports no
cost. In exec mode Codex asks no one: its `sandbox` is the brake, and with
`approval = "always"` every turn waits for a card first (`gate`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

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
    needs_approval,
)
from roster.children import kill_group, start_child
from roster.errors import AgentFailed
from roster.launcher import agent_environment
from roster.progress_lines import ProgressLines
from roster.refs import SecretSource
from roster.run_files import OUTBOX_VARIABLE, extra_dirs, outbox_note
from roster.spec import CodexAgentSpec
from roster.tail import ScrubbedTail
from storage.sessions import AgentSessions, TurnReport, chat_key

MAX_LINE = 4_000_000  # one JSON event (a command's whole output may be in it)
KEPT_ERRORS = 2000


class CodexAgent(Agent):
    spec: CodexAgentSpec

    def __init__(
        self, spec: CodexAgentSpec, *, secrets: SecretSource, sessions: AgentSessions
    ) -> None:
        self.spec = spec
        self._secrets = secrets
        self._sessions = sessions

    def action(self, text: str) -> Action:
        arguments = {"prompt": text, "sandbox": self.spec.sandbox.value}
        return Action(
            agent=self.name, kind=CLI_TOOL, tool="codex", cwd=self.spec.cwd, arguments=arguments
        )

    def gate(self, request: AgentRequest) -> NeedsApproval | None:
        if not needs_approval(self.spec.policy, ("codex", request.text)):
            return None
        return NeedsApproval(
            action=self.action(request.text), policy=self.spec.policy, state={"text": request.text}
        )

    def recheck(self, request: AgentRequest, state: dict[str, Any]) -> NeedsApproval | None:
        text = str(state.get("text", request.text))
        return NeedsApproval(action=self.action(text), policy=self.spec.policy, state=state)

    async def start(self, request: AgentRequest, ctx: RunContext) -> Outcome:
        where = chat_key(request.chat_id, request.thread)
        known = await self._sessions.get(where, self.name)
        await ctx.before_model_call()
        await ctx.before_effect()
        thread = known.session_id if known else None
        turn = await self._run(self.argv(request.text, thread, request), ctx, request.outbox)
        if turn.thread_id is None:
            raise AgentFailed(f"Codex failed: {turn.errors or 'no thread started'}")
        before = (
            (known.tokens_in, known.tokens_out)
            if known and known.session_id == turn.thread_id
            else (0, 0)
        )
        usage = Usage(max(turn.tokens_in - before[0], 0), max(turn.tokens_out - before[1], 0))
        ctx.spent(usage)
        report = TurnReport(turn.thread_id, tokens_in=turn.tokens_in, tokens_out=turn.tokens_out)
        await self._sessions.record(where, self.name, report)
        ok = turn.completed and not turn.failed
        text = turn.answer or (self._secrets.redact(turn.errors) if not ok else "")
        return Finished(text, ok=ok, usage=usage)

    def argv(
        self, text: str, thread_id: str | None, request: AgentRequest | None = None
    ) -> tuple[str, ...]:
        """The command line of a turn; `request` adds the folders of its files and of its
        outbox (`--add-dir`) and the line naming the outbox (as developer instructions,
        a TOML string: not in the prompt, which the thread's history keeps)."""
        spec = self.spec
        argv = [spec.cli, "exec", "--json", "--skip-git-repo-check", "--sandbox", spec.sandbox]
        if spec.model:
            argv += ["--model", spec.model]
        if request is not None:
            for folder in extra_dirs(request):
                argv += ["--add-dir", folder]
            if note := outbox_note(request.outbox):
                argv += ["-c", f"developer_instructions={json.dumps(note)}"]
        if thread_id:
            argv += ["resume", thread_id]
        return (*argv, "--", text)

    async def _run(
        self, argv: tuple[str, ...], ctx: RunContext, outbox: str | None = None
    ) -> CodexTurn:
        env = agent_environment(self.spec.env, self._secrets)
        if outbox is not None:
            env[OUTBOX_VARIABLE] = outbox
        process = await start_child(argv, env=env, cwd=self.spec.cwd, limit=MAX_LINE)
        ctx.process_started(process.pid)
        turn = CodexTurn(self._secrets.redact)
        try:
            async with asyncio.timeout(self.spec.timeout):
                assert process.stdout is not None
                while line := await process.stdout.readline():
                    if turn.read(line):
                        await ctx.progress(turn.lines.text())
                await process.wait()
        except TimeoutError:
            await kill_group(process)
            raise AgentFailed(f"Codex took longer than {self.spec.timeout:g} s.") from None
        except asyncio.CancelledError:
            await kill_group(process)
            raise
        return turn


class CodexTurn:
    """What one `codex exec --json` said: its thread, answer, tokens and progress lines."""

    def __init__(self, redact: Any) -> None:
        self.thread_id: str | None = None
        self.answer = ""
        self.tokens_in = 0
        self.tokens_out = 0
        self.completed = False
        self.failed = False
        self.lines = ProgressLines()
        self._errors = ScrubbedTail(KEPT_ERRORS, redact)

    @property
    def errors(self) -> str:
        return self._errors.text().strip()

    def read(self, raw: bytes) -> bool:
        """Take one line of output; True when the progress lines changed."""
        try:
            event = json.loads(raw)
        except ValueError:
            self._errors.add(raw.decode(errors="replace"))  # a warning on the shared pipe
            return False
        if not isinstance(event, dict):
            return False
        return self._event(event)

    def _event(self, event: dict[str, Any]) -> bool:
        kind = event.get("type")
        if kind == "thread.started":
            self.thread_id = str(event.get("thread_id") or "") or None
        elif kind == "turn.completed":
            usage = event.get("usage") or {}
            self.tokens_in = int(usage.get("input_tokens", 0))
            self.tokens_out = int(usage.get("output_tokens", 0))
            self.completed = True
        elif kind in ("turn.failed", "error"):
            self.failed = kind == "turn.failed" or self.failed
            error = event.get("error") or {}
            message = error.get("message") if isinstance(error, dict) else event.get("message")
            self._errors.add(f"{message or kind}\n")
        elif kind in ("item.started", "item.completed"):
            return self._item(kind, event.get("item") or {})
        return False

    def _item(self, kind: str, item: dict[str, Any]) -> bool:
        what = item.get("type")
        if what == "agent_message" and kind == "item.completed":
            self.answer = str(item.get("text") or "")
        elif what == "command_execution" and kind == "item.started":
            self.lines.add(f"Bash: {_unwrapped(str(item.get('command') or ''))}")
            return True
        elif what == "file_change" and kind == "item.completed":
            for change in item.get("changes") or []:
                self.lines.add(f"Edit: {change.get('path', '')}")
            return True
        elif what == "error":
            self._errors.add(f"{item.get('message', '')}\n")
        return False


def _unwrapped(command: str) -> str:
    """`/bin/bash -lc 'npm test'` -> `npm test`: the command as the model wrote it."""
    for shell in ("/bin/bash -lc ", "bash -lc ", "/bin/sh -c "):
        if command.startswith(shell):
            inner = command[len(shell) :]
            if len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "'\"":
                return inner[1:-1]
            return inner
    return command
