"""The command agent: a command line run as a subprocess, its output streamed back."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import re
import shlex
from collections.abc import Iterator, Sequence
from typing import Any

from roster.agent import (
    Action,
    Agent,
    AgentRequest,
    Finished,
    NeedsApproval,
    Outcome,
    RunContext,
    needs_approval,
)
from roster.children import child_environment, kill_group, start_child
from roster.errors import ToolError
from roster.options import END_OF_OPTIONS, refuse_options
from roster.refs import SecretSource, resolve
from roster.run_files import OUTBOX_VARIABLE
from roster.spec import CommandAgentSpec
from roster.tail import ScrubbedTail

READ_CHUNK = 4096
MAX_KEPT_OUTPUT = 1_000_000  # keep the tail of runaway output, not all of it
PREVIEW_TIMEOUT_SECONDS = 10.0
FILES = "{files}"  # the paths of the files sent with the message
_INPUT_WORD = re.compile(r"(?:^|\s)\{input\}")  # a shell line's word that is the input


class CommandAgent(Agent):
    spec: CommandAgentSpec

    def __init__(self, spec: CommandAgentSpec, *, secrets: SecretSource) -> None:
        self.spec = spec
        self._secrets = secrets

    def argv(self, text: str, files: Sequence[str] = ()) -> tuple[str, ...]:
        """The exact argv for a message (and the paths of the files sent with it).

        With `actions`, the first word picks a fixed command line. Without a shell,
        `{input}` becomes one argument as it is; with `shell = true` it is quoted into
        the shell line. A template without `{input}` gets the message's words appended
        (after "--" with `end_of_options`). Message words that stand as arguments of
        their own may not start with "-" unless `accept_options` or a "--" comes first.
        `{files}` standing as a word becomes one argument per file; inside a word (or a
        shell line) the paths, space-separated (quoted for the shell).
        """
        if "\x00" in text:
            raise ToolError("The message holds a NUL character, which no command line can carry.")
        template = self.spec.command
        if self.spec.actions:
            word, _, text = text.strip().partition(" ")
            template = self.spec.actions.get(word.lower(), ())
            if not template:
                raise ToolError(f"Unknown action {word!r}. Try: {', '.join(self.spec.actions)}.")
        self._check_whole_input(template, text)
        if self.spec.shell:
            line = " ".join(template).replace("{input}", shlex.quote(text))
            line = line.replace(FILES, " ".join(shlex.quote(path) for path in files))
            return ("/bin/sh", "-c", line)
        template = tuple(_with_files(template, files))
        argv = tuple(part.replace("{input}", text) for part in template)
        uses_input = any("{input}" in part for part in template)
        if not uses_input and text.strip() and not self.spec.stdin and not self.spec.actions:
            argv += self._appended(text)
        return argv

    def _check_whole_input(self, template: tuple[str, ...], text: str) -> None:
        """`{input}` standing as a word of its own must not be an option."""
        if self.spec.accept_options:
            return
        for index, part in enumerate(template):
            whole = part == "{input}" or (self.spec.shell and _INPUT_WORD.search(part))
            if whole and END_OF_OPTIONS not in template[:index]:
                refuse_options((text,), what="The word", hint=self._hint())

    def _appended(self, text: str) -> tuple[str, ...]:
        words = tuple(shlex.split(text)) if _splittable(text) else (text,)
        if self.spec.end_of_options:
            return (END_OF_OPTIONS, *words)
        if not self.spec.accept_options:
            refuse_options(words, what="The word", hint=self._hint())
        return words

    def _hint(self) -> str:
        return f"An admin may allow options with accept_options = true on {self.name}."

    def action(self, text: str, files: Sequence[str] = ()) -> Action:
        argv = self.argv(text, files)
        return Action(agent=self.name, kind="command", argv=argv, cwd=self.spec.cwd)

    def gate(self, request: AgentRequest) -> NeedsApproval | None:
        files = [file.path for file in request.files]
        action = self.action(request.text, files)
        if not needs_approval(self.spec.policy, action.argv):
            return None
        state = {"text": request.text, "files": files} if files else {"text": request.text}
        return NeedsApproval(action=action, policy=self.spec.policy, state=state)

    def recheck(self, request: AgentRequest, state: dict[str, Any]) -> NeedsApproval | None:
        text = state.get("text", "")
        try:
            action = self.action(text, [str(path) for path in state.get("files", ())])
        except ToolError:  # no longer a valid message (the config changed): the run says why
            return None
        return NeedsApproval(action=action, policy=self.spec.policy, state=state)

    async def preview(self, action: Action) -> str:
        """Run the agent's read-only `preview` command line, briefly, for the card."""
        if not self.spec.preview:
            return ""
        process = await start_child(self.spec.preview, env=self._environment(), cwd=self.spec.cwd)
        try:
            async with asyncio.timeout(PREVIEW_TIMEOUT_SECONDS):
                out, _ = await process.communicate()
        except TimeoutError:
            await kill_group(process)
            return f"(the preview did not finish within {PREVIEW_TIMEOUT_SECONDS:g} s)"
        return out.decode(errors="replace")

    async def start(self, request: AgentRequest, ctx: RunContext) -> Outcome:
        argv = self.argv(request.text, [file.path for file in request.files])
        await ctx.before_effect()  # the run is stored: a crash from here on never runs it twice
        process = await start_child(
            argv,
            env=self._environment(request.outbox),
            cwd=self.spec.cwd,
            stdin=asyncio.subprocess.PIPE if self.spec.stdin else asyncio.subprocess.DEVNULL,
        )
        ctx.process_started(process.pid)
        try:
            output, timed_out = await self._collect(process, request.text, ctx)
        except asyncio.CancelledError:
            await kill_group(process)
            raise
        if timed_out:
            note = f"Timed out after {self.spec.timeout:g} s; the process group was killed."
            return Finished(_with_note(output, note), ok=False, exit_code=process.returncode)
        code = process.returncode
        return Finished(output, ok=code == 0, exit_code=code)

    async def _collect(
        self, process: asyncio.subprocess.Process, text: str, ctx: RunContext
    ) -> tuple[str, bool]:
        # Scrubbed before it is cut: a secret's value cut in two would leak its other half.
        tail = ScrubbedTail(MAX_KEPT_OUTPUT, self._secrets.redact)
        try:
            async with asyncio.timeout(self.spec.timeout):
                if self.spec.stdin and process.stdin:
                    process.stdin.write(text.encode())
                    with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                        await process.stdin.drain()
                    process.stdin.close()
                await self._stream(process, tail, ctx)
                await process.wait()
        except TimeoutError:
            await kill_group(process)
            return tail.text(), True
        return tail.text(), False

    async def _stream(
        self, process: asyncio.subprocess.Process, tail: ScrubbedTail, ctx: RunContext
    ) -> None:
        assert process.stdout is not None
        # Incremental: a character split between two reads is decoded whole (and a
        # secret's value in the output stays one piece the scrubber can find).
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while data := await process.stdout.read(READ_CHUNK):
            tail.add(decoder.decode(data))
            await ctx.progress(tail.text())

    def _environment(self, outbox: str | None = None) -> dict[str, str]:
        """The allowlist, this agent's own `env` with its references resolved, and the
        folder whose files are sent to the chat when the run ends."""
        declared = {key: resolve(value, self._secrets) for key, value in self.spec.env.items()}
        if outbox is not None:
            declared[OUTBOX_VARIABLE] = outbox
        return child_environment(declared, redact=self._secrets.redact)


def _with_files(template: Sequence[str], files: Sequence[str]) -> Iterator[str]:
    for part in template:
        if part == FILES:
            yield from files
        else:
            yield part.replace(FILES, " ".join(files))


def _splittable(text: str) -> bool:
    try:
        shlex.split(text)
    except ValueError:
        return False
    return True


def _with_note(output: str, note: str) -> str:
    return f"{output.rstrip()}\n{note}" if output.strip() else note
