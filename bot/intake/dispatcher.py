"""Every message and button press from every transport comes through here.

`handle()` returns at once: work runs as tasks, in order within a chat and
concurrently across chats; control commands (/stop, /approve) skip the queue so they
work while the chat's agent is busy.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

from bot import logs, messages
from bot.access import Access
from bot.config import CurrentConfig, Role
from bot.delivery import sendkeys
from bot.delivery.postman import Postman
from bot.intake import files, voice
from bot.intake.actions import Actions, described
from bot.intake.command_spec import Command, CommandContext, keeps_args_private, spec_of
from bot.intake.files import Files
from bot.intake.ratelimit import RateLimit
from bot.intake.routing import ROUTE_ACTION
from bot.intake.voice import Voice
from bot.intake.welcome import Welcome
from bot.invites import Invites
from bot.lanes import ChatLanes, commands_lane
from bot.runs.approvals import Approvals
from bot.runs.cards import ACTION_ID, parse_press
from bot.runs.reasons import CANCEL_ACTION
from bot.text import Piece
from bot.types import Incoming
from roster.spec import AGENT_NAME
from storage.audit import AuditLog
from storage.tasks import TaskSet

log = logging.getLogger(__name__)

REFUSAL_REPEAT_SECONDS = 3600.0


class Dispatcher:
    def __init__(
        self,
        *,
        config: CurrentConfig,
        access: Access,
        audit: AuditLog,
        approvals: Approvals,
        invites: Invites,
        postman: Postman,
        redact: Callable[[str], str],  # the vault's: stored secrets' values scrubbed
        tasks: TaskSet,
        lanes: ChatLanes,
        ready: asyncio.Event,  # set once the whole deck has started
        actions: Actions,
        files: Files,
        voice: Voice,
        welcome: Welcome,
        commands: Mapping[str, Command],
        on_handled: Callable[[str], None] = lambda key: None,
        claim: Callable[[str], Awaitable[bool]] | None = None,
    ) -> None:
        self._config = config
        self._access = access
        self._audit = audit
        self._approvals = approvals
        self._invites = invites
        self._postman = postman
        self._redact = redact
        self._tasks = tasks
        self._lanes = lanes
        self._ready = ready
        self._actions = actions
        self._files = files
        self._voice = voice
        self._welcome = welcome
        self._commands = commands
        self._menu = {name: command.spec for name, command in commands.items()}
        self._on_handled = on_handled  # marks an inbox row done
        self._claim = claim  # marks it done durably, before a command that acts once
        self._refused: dict[str, float] = {}
        self._rate = RateLimit(config().deck.rate_limit_per_minute)

    async def handle(self, incoming: Incoming) -> None:
        """Take one message or press; return as soon as its work is scheduled."""
        role = self._access.role(incoming.user, incoming.chat)
        admitted = self._access.admits(incoming.user, incoming.chat, incoming.outsider)
        if role is None or not admitted:
            if (code := self._invite_code(incoming)) is not None:
                self._spawn(incoming, self._join(incoming, code))
            else:
                self._spawn(incoming, self._refuse_stranger(incoming, incoming.outsider))
        elif incoming.press is not None:
            self._spawn(incoming, self._press(incoming, role))
        elif (approval_id := self._approvals.reasons.take(incoming)) is not None:
            self._spawn(incoming, self._deny_with(incoming, approval_id))
        elif incoming.form:  # an answer to a form nobody waits for: never for an agent
            self._spawn(incoming, self._actions.stale_form(incoming))
        elif not self._rate.allow(incoming.user):
            self._spawn(incoming, self._slow_down(incoming))
        elif incoming.unsupported:
            self._queue(incoming, self._unsupported(incoming))
        elif voice.recording(incoming) is not None:
            self._queue(incoming, self._spoken(incoming))
        elif files.sent(incoming):
            self._queue(incoming, self._with_files(incoming, role))
        else:
            self._route_text(incoming, role)

    async def _slow_down(self, incoming: Incoming) -> None:
        self._audit.record(incoming.user, "refused.rate_limit", incoming.chat)
        await self._reply(incoming, messages.SLOW_DOWN)

    async def _spoken(self, incoming: Incoming) -> None:
        """A voice note: its transcript is handled as if its sender had typed it."""
        text = await self._voice.transcript(incoming, self._keeps_args_private)
        if text is not None:
            await self.handle(replace(incoming, text=text, attachments=()))

    def _keeps_args_private(self, text: str) -> bool:
        return keeps_args_private(text, self._menu)

    async def _with_files(self, incoming: Incoming, role: Role) -> None:
        """Photos and files: saved, then the caption handled as typed text, with them."""
        saved = await self._files.received(incoming, role)
        if saved is not None:
            text = incoming.text.strip() or described(saved)
            await self.handle(replace(incoming, text=text, attachments=(), received=saved))

    async def _unsupported(self, incoming: Incoming) -> None:
        self._audit.record(
            incoming.user, "refused.unsupported", incoming.chat, kind=incoming.unsupported
        )
        await self._reply(incoming, messages.unsupported(incoming.unsupported))

    def _route_text(self, incoming: Incoming, role: Role) -> None:
        text = incoming.text.strip()
        limit = self._config().deck.max_message_chars
        if len(text) > limit:
            self._queue(incoming, self._reply(incoming, messages.too_long(len(text), limit)))
        elif text.startswith("/"):
            name, _, args = text[1:].partition(" ")
            name = name.split("@", 1)[0].lower()  # Telegram's /cmd@botname
            found = self._commands.get(name)
            if found is None:
                self._queue(incoming, self._unknown_command(incoming, name))
                return
            spec = found.spec
            work = self._run_command(found, incoming, args.strip(), role)
            if spec.immediate:
                self._spawn(incoming, work)
            elif spec.with_agents:
                self._queue(incoming, work)
            else:
                self._queue(incoming, work, lane=commands_lane(incoming.chat))
        elif named := _named_agent(text):
            # `@name text` names an agent; an unknown name is said, not sent to the default.
            agent, rest = named
            self._queue(incoming, self._actions.ask(incoming, role, agent, rest))
        elif text:
            self._queue(incoming, self._actions.route_text(incoming, role, text))
        else:
            self._on_handled_key(incoming)

    async def _run_command(self, found: Command, incoming: Incoming, args: str, role: Role) -> None:
        spec = found.spec
        if not role.allows(spec.role):
            await self._actions.refuse_role(incoming, f"use /{spec.name}", spec.role)
            return
        if spec.private_args and incoming.redacted:  # stored without them; handled again
            self._audit.record(incoming.user, "command.args_lost", spec.name)
            await self._reply(incoming, messages.args_not_kept(spec.name))
            return
        # Cut after scrubbing: a secret's value cut in two would no longer be found.
        shown = "(not recorded)" if spec.private_args else self._redact(args)[:500]
        self._audit.record(incoming.user, "command", spec.name, args=shown, chat=incoming.chat)
        ctx = CommandContext(
            incoming=incoming,
            name=spec.name,
            args=args,
            role=role,
            commands=self._menu,
            send=self._postman.send,
        )
        if spec.once and not await self._claimed(incoming):
            return  # handled before: what it did is done
        await found.handler(ctx)

    async def _deny_with(self, incoming: Incoming, approval_id: str) -> None:
        """This message is the reason for a denial: claimed in the inbox before it decides,
        so a restart or a redelivery never takes it twice nor hands it to an agent."""
        if not await self._claimed(incoming):
            return
        reason = incoming.text.strip()[:500]
        await self._actions.decide(incoming, approval_id, "deny", reason)

    def _invite_code(self, incoming: Incoming) -> str | None:
        """The code of a stranger's `/start <code>`; None for anything else. Someone the
        platform says is outside our organisation (another Slack workspace) cannot join."""
        if incoming.press is not None or incoming.outsider:
            return None
        text = incoming.text.strip()
        spec = spec_of(text, self._menu)
        if spec is None or spec.name != "start":
            return None
        code = text.partition(" ")[2].strip()
        return code or None

    async def _join(self, incoming: Incoming, code: str) -> None:
        """A stranger redeems an invite: added with its role, or told it does not work."""
        if not await self._claimed(incoming):
            return
        joined = await self._invites.redeem(incoming.user, code)
        await self._reply(incoming, *self._welcome.joined(incoming, joined))

    async def _claimed(self, incoming: Incoming) -> bool:
        """Mark the update handled, durably, before a command that acts once acts."""
        if not incoming.update_key or self._claim is None:
            return True  # no inbox row (the console): nothing could hand it out again
        return await self._claim(incoming.update_key)

    async def _press(self, incoming: Incoming, role: Role) -> None:
        assert incoming.press is not None
        if incoming.press.action_id == ROUTE_ACTION:
            await self._actions.pick(incoming, role)
            return
        if incoming.press.action_id == CANCEL_ACTION:
            await self._actions.cancel_reason(incoming)
            return
        if incoming.press.action_id != ACTION_ID:
            self._audit.record(incoming.user, "press.unknown", incoming.press.action_id)
            await self._postman.answer_press(incoming, messages.UNKNOWN_BUTTON, alert=True)
            return
        approval_id, choice = parse_press(incoming.press.value)
        await self._actions.decide(incoming, approval_id, choice)

    async def _refuse_stranger(self, incoming: Incoming, outsider: str = "") -> None:
        if outsider:
            self._audit.record(incoming.user, "refused.outsider", incoming.chat, reason=outsider)
        else:
            private = keeps_args_private(incoming.text, self._menu)
            said = "(a command with private arguments)" if private else incoming.text[:200]
            self._audit.record(incoming.user, "refused.unknown_user", incoming.chat, text=said)
        if incoming.press is not None:  # a press is always answered, never with a chat message
            await self._postman.answer_press(incoming, messages.stranger(incoming.user), alert=True)
            return
        now = time.monotonic()
        if now - self._refused.get(incoming.user, -REFUSAL_REPEAT_SECONDS) < REFUSAL_REPEAT_SECONDS:
            return
        self._refused[incoming.user] = now
        await self._reply(incoming, messages.stranger(incoming.user))

    async def _unknown_command(self, incoming: Incoming, name: str) -> None:
        self._audit.record(incoming.user, "command.unknown", name)
        await self._reply(incoming, messages.unknown_command(name, sorted(self._menu)))

    async def _reply(self, incoming: Incoming, *pieces: Piece) -> None:
        await self._actions.reply(incoming, *pieces)

    def _spawn(self, incoming: Incoming, work: Awaitable[object]) -> None:
        task = self._tasks.spawn(self._guarded(incoming, work), name=f"handle:{incoming.chat}")
        if inspect.iscoroutine(work):  # cancelled before it began (a stop): closed, not leaked
            task.add_done_callback(lambda _: work.close())

    def _queue(self, incoming: Incoming, work: Awaitable[None], lane: str = "") -> None:
        self._lanes.submit(lane or incoming.chat, self._guarded(incoming, work))

    async def _when_ready(self, work: Awaitable[object]) -> None:
        """`work`, once the whole deck has started (at once, after the start)."""
        if not self._ready.is_set():
            try:
                await self._ready.wait()
            except BaseException:
                if inspect.iscoroutine(work):
                    work.close()  # stopped before it began: it never runs, and says so cleanly
                raise
        await work

    async def _guarded(self, incoming: Incoming, work: Awaitable[object]) -> None:
        """Run one piece of work; whatever happens, the user hears something short."""
        where = logs.enter(chat=incoming.chat)  # JSON log lines name the chat
        # Replies keyed by the update, so handling it again after a crash sends them once.
        sendkeys.open_scope(incoming.update_key, replayed=incoming.replayed)
        try:
            await self._when_ready(work)
        except Exception:
            log.exception("handling a message in %s failed", incoming.chat)
            try:
                await self._reply(incoming, messages.INTERNAL_ERROR)
            except Exception:
                log.exception("could not even report the failure to %s", incoming.chat)
        finally:
            self._on_handled_key(incoming)
            logs.leave(where)

    def _on_handled_key(self, incoming: Incoming) -> None:
        if incoming.update_key:
            self._on_handled(incoming.update_key)


_AT_NAME = re.compile(r"@(\S+)(?:\s+(.*))?", re.DOTALL)


def _named_agent(text: str) -> tuple[str, str] | None:
    """`@name rest` → (name, rest) when `name` is shaped like an agent's name, else None."""
    named = _AT_NAME.match(text)
    if named is None or not re.match(AGENT_NAME, named[1].lower()):
        return None
    return named[1].lower(), (named[2] or "").strip()
