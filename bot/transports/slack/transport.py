"""The Slack transport: slack-bolt's `AsyncApp` in, the Web API out.

An event (a mention, a direct message), a press or a form's answer is acknowledged once
it is stored in the inbox, never before (a redelivered `event_id` or a retry is found
there and skipped), and then handed to the dispatcher, which only queues the work.
Events skip bolt's dispatch (`take_event`); presses, forms and slash commands go through
it. A slash command is acknowledged at once (Slack never sends one again; its echo comes
first). Socket Mode (the default) needs no public URL; HTTP mode serves the Events API
on our own aiohttp site, checking each request's signature and age before its body is
read (`endpoint`). A slash command is echoed into the channel through the postman,
unless its arguments are private (`private`); a channel's role is only for members of
our own workspace (`members`). Someone the `Gate` refuses gets nothing of theirs posted
and names no thread's agent: their update only reaches the dispatcher, which refuses it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import aiohttp
from aiohttp import web
from slack_bolt.app.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck

from bot.commands import Commands, keeps_args_private
from bot.config import SlackMode, SlackSection
from bot.errors import Refused, TransportError, TransportStartError
from bot.text import code, rich
from bot.transports.slack import files, forms, inbound, members
from bot.transports.slack.authorize import KnownIdentity
from bot.transports.slack.endpoint import Endpoint
from bot.transports.slack.inbound import SlackBotIdentity
from bot.transports.slack.intake import Intake
from bot.transports.slack.members import Members
from bot.transports.slack.private import PrivateReplies
from bot.transports.slack.render import (
    chat_command,
    escape,
    in_slack_form,
    render,
    render_message,
)
from bot.transports.slack.socket_mode import EventsFirst
from bot.transports.slack.threads import ThreadAgentStore, ThreadMemory
from bot.transports.slack.web import SlackRefused, SlackWeb, make_client
from bot.types import (
    Attachment,
    Incoming,
    MessageRef,
    OnOutage,
    Outgoing,
    Queued,
    Routes,
    Sender,
    Sent,
    TextRequest,
)
from roster.errors import ReferenceNotFound
from roster.refs import NoSecrets, SecretSource, resolve
from storage.inbox import Inbox
from storage.tasks import TaskSet

log = logging.getLogger(__name__)

Handle = Callable[[Incoming], Awaitable[None]]

# Slack's answer waits this long at most for the inbox write; Slack itself gives up and
# sends the update again after 3 s.
STORE_SECONDS = 2.5
STOP_SECONDS = 10.0
REFUSED_TOKEN = {"invalid_auth", "not_authed", "account_inactive", "token_revoked"}
NOT_A_MEMBER = "I can't post in this conversation. Invite me first: /invite @{name}"
NOT_THERE = {"not_in_channel", "channel_not_found", "is_archived"}
NOISE = ("As you gave `client` as well", "As `installation_store` or `authorize` has been used")


class Gate(Protocol):
    """Who may be served (`bot.access.Access`): asked before anything of theirs is acted on."""

    def admits(self, user: str, chat: str, outsider: str = "") -> bool: ...

    def only_by_chat(self, user: str, chat: str) -> bool: ...


class SlackTransport:
    name = inbound.TRANSPORT
    durable = True
    has_typing = False

    def __init__(
        self,
        settings: SlackSection,
        *,
        inbox: Inbox,
        threads: ThreadAgentStore,
        commands: Commands,
        gate: Gate,
        secrets: SecretSource | None = None,
    ) -> None:
        self._settings = settings
        # Given at start: echoes go the way every message goes (scrubbed, outboxed).
        self._postman: Sender | None = None
        self._commands = commands  # a command's private arguments are never echoed
        # Whether a person may be served; one whose role would come from writing in the
        # chat alone is first checked as a full member of our workspace (`members`).
        self._gate = gate
        self._members = Members()
        self._secrets = secrets or NoSecrets()
        self._private = PrivateReplies()
        self._threads = ThreadMemory(threads)
        self._tasks = TaskSet()
        self._intake = Intake(inbox, self._tasks)
        self._handle: Handle | None = None
        self._session: aiohttp.ClientSession | None = None
        self._web: SlackWeb | None = None
        self._me = SlackBotIdentity("", "", "", "")
        self._site: web.AppRunner | None = None
        self._socket: EventsFirst | None = None
        self.address = ""  # HTTP mode: where Slack posts to (`http://host:port/path`)

    @property
    def me(self) -> SlackBotIdentity:
        return self._me

    # -- lifecycle ------------------------------------------------------------------

    async def start(
        self,
        handle: Handle,
        *,
        on_outage: OnOutage,
        postman: Sender,
        routes: Routes | None = None,
    ) -> None:
        """Check the tokens (`auth.test`), then listen; any failure is one clear line.

        `on_outage` is not called: Slack's outages show as failed sends (the outbox).
        `postman` echoes slash commands; `routes` are not served here (Telegram's are).
        """
        bot_token = self._credential("bot_token")
        self._handle = handle
        self._postman = postman
        self._session = aiohttp.ClientSession()
        try:
            client = make_client(
                bot_token,
                base_url=self._settings.base_url,
                timeout=self._settings.timeout,
                session=self._session,
            )
            self._web = SlackWeb(client)
            self._me = await self._check_token(self._web)
            app = self._bolt_app(self._web, bot_token)
            if self._settings.mode is SlackMode.HTTP:
                await self._serve_http(app)
            else:
                await self._connect_socket(app, self._web)
        except BaseException:
            await self.stop()
            raise
        log.info("slack: connected as %s (%s mode)", self._me.name, self._settings.mode)

    async def stop(self) -> None:
        if self._socket is not None:
            await self._socket.close_async()  # type: ignore[no-untyped-call]  # bolt is untyped here
            self._socket = None
        if self._site is not None:
            await self._site.cleanup()
            self._site = None
        try:
            async with asyncio.timeout(STOP_SECONDS):
                await self._tasks.drain()
        except TimeoutError:
            await self._tasks.cancel_all()
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._handle = None

    def _credential(self, key: str) -> str:
        reference = str(getattr(self._settings, key))
        try:
            return resolve(reference, self._secrets)
        except ReferenceNotFound as exc:
            raise TransportStartError(f"slack.{key}: {exc}") from None

    async def _check_token(self, web_api: SlackWeb) -> SlackBotIdentity:
        try:
            return await web_api.whoami()
        except SlackRefused as exc:
            if exc.code in REFUSED_TOKEN:
                raise TransportStartError(
                    f"Slack refused the bot token ({exc.code}): check slack.bot_token "
                    "(a bot token starts with xoxb-)"
                ) from None
            raise TransportStartError(f"Slack auth.test failed: {exc.code}") from None
        except TransportError as exc:
            where = self._settings.base_url or "the Slack Web API"
            raise TransportStartError(f"Cannot reach {where}: {exc}") from None

    def _bolt_app(self, web_api: SlackWeb, bot_token: str) -> AsyncApp:
        app = AsyncApp(
            name="agentdeck",
            client=web_api.client,
            authorize=KnownIdentity(self._me, bot_token),  # not `auth.test` per request
            # HTTP mode: the endpoint checks the signature before it reads the body;
            # Socket Mode: Slack's WebSocket, opened with the app token, is the proof.
            signing_secret="",
            request_verification_enabled=False,
            # Our listeners only store and queue, so bolt answers Slack when they return
            # and starts no tasks of its own.
            process_before_response=True,
            logger=_bolt_logger(),
        )
        app.event("app_mention")(self._on_event)
        app.event("message")(self._on_event)
        app.command(self._settings.command)(self._on_command)
        app.action(re.compile(".+"))(self._on_action)
        app.view_submission(forms.CALLBACK)(self._on_form)
        app.view_closed(forms.CALLBACK)(self._on_form_closed)
        return app

    async def _serve_http(self, app: AsyncApp) -> None:
        secret = self._credential("signing_secret")
        if not secret.strip():
            raise TransportStartError("slack.signing_secret is empty: HTTP mode needs it")
        endpoint = Endpoint(app, secret, events=self.take_event)
        self._site = web.AppRunner(endpoint.application(self._settings.path), access_log=None)
        await self._site.setup()
        listen, port = self._settings.listen, self._settings.port
        try:
            await web.TCPSite(self._site, listen, port).start()
        except OSError as exc:
            raise TransportStartError(
                f"slack: cannot listen on {listen}:{port}: {exc.strerror}"
            ) from None
        host, bound = self._site.addresses[0][:2]
        self.address = f"http://{host}:{bound}{self._settings.path}"

    async def _connect_socket(self, app: AsyncApp, web_api: SlackWeb) -> None:
        app_token = self._credential("app_token")
        try:
            url = await web_api.open_socket(app_token)
        except SlackRefused as exc:
            raise TransportStartError(
                f"Slack refused the app token ({exc.code}): check slack.app_token "
                "(an app-level token with connections:write, starting with xapp-)"
            ) from None
        except TransportError as exc:
            raise TransportStartError(f"Slack Socket Mode: {exc}") from None
        self._socket = EventsFirst(
            app, app_token, web_client=web_api.client, events=self.take_event
        )
        self._socket.client.wss_uri = url  # the URL just issued: no second call
        try:
            async with asyncio.timeout(self._settings.timeout):
                await self._socket.connect_async()  # type: ignore[no-untyped-call]
        except TimeoutError:
            raise TransportStartError(
                f"Slack Socket Mode: no WebSocket connection after {self._settings.timeout:g} s"
            ) from None

    # -- inbound --------------------------------------------------------------------

    async def _on_event(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        await self.take_event(body)

    async def take_event(self, body: dict[str, Any]) -> None:
        """An Events API delivery; returns once it is stored (then Slack may be answered).

        HTTP mode's endpoint and Socket Mode's handler call this directly, not through
        bolt: storing an event needs none of bolt's per-request work (a context with a Web
        API client of its own, middleware, matching against every listener), which a
        burst pays 300 times over.
        """
        incoming = inbound.from_event(body, self._me)
        if incoming is not None:
            await self._deliver(self._mark_outsider(incoming, body))

    async def _on_action(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        incoming = inbound.from_action(body)
        if incoming is not None:
            await self._deliver(self._mark_outsider(incoming, body))

    async def _on_form(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        """A modal's answer. A command typed into it is shown as the input's error (the
        modal stays open): it is never a reason, and never runs from there either."""
        incoming = forms.answer_of(body)
        if incoming is not None and forms.is_command(incoming.text):
            await ack(response_action="errors", errors={forms.ANSWER_BLOCK: forms.NOT_A_COMMAND})
            return
        await ack()
        if incoming is not None:
            await self._deliver(self._mark_outsider(incoming, body))

    async def _on_form_closed(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        incoming = forms.closed_of(body)
        if incoming is not None:
            await self._deliver(self._mark_outsider(incoming, body))

    async def _on_command(self, ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        commands = self._commands
        incoming = self._mark_outsider(inbound.from_command(body, self._me, commands), body)
        response_url = str(body.get("response_url") or "")
        typed = f"{self._settings.command} {body.get('text') or ''}".strip()
        private = keeps_args_private(incoming.text, commands)
        opening = self._take_command(incoming, typed, response_url, private=private)
        self._tasks.spawn(opening, name=f"slack-command:{incoming.chat}")

    async def _take_command(
        self, incoming: Incoming, typed: str, response_url: str, *, private: bool
    ) -> None:
        """Echo a command into the channel, unless it is private or its sender is refused:
        then it is answered to the sender alone (a refusal included)."""
        incoming = await self._vetted(incoming)
        if private or not self._admits(incoming):
            await self._admit_privately(incoming, response_url)
        else:
            await self._open_thread(incoming, typed, response_url)

    async def _open_thread(self, incoming: Incoming, typed: str, response_url: str) -> None:
        """Post the command where everyone sees it; its answers go into that message's thread.

        The echo goes through the postman (scrubbed of secret values, kept in the outbox),
        once: an echo that cannot go out now has no use later.
        """
        channel = inbound.channel_of(incoming.chat)
        key = f"{incoming.update_key}#echo" if incoming.update_key else None
        echo = Outgoing(chat=incoming.chat, text=rich(incoming.user, " ", code(typed)), key=key)
        thread = None
        assert self._postman is not None, "echoed before the transport started"
        try:
            sent: Sent = await self._postman.send(echo, retry=False)
        except TransportError as exc:
            sent = Queued(str(exc), exc)
        if isinstance(sent, MessageRef):
            thread = inbound.thread_id(channel, sent.message_id)
        elif isinstance(sent.cause, SlackRefused) and sent.cause.code in NOT_THERE:
            log.info("slack: cannot post the command in %s: %s", channel, sent.cause)
            await self._tell_sender(response_url)
            return
        else:
            log.warning(
                "slack: the echo of a command in %s failed (%s); answering anyway",
                channel,
                sent.reason,
            )
        await self._admit(dataclasses.replace(incoming, thread=thread))

    async def _admit_privately(self, incoming: Incoming, response_url: str) -> None:
        """A command with private arguments: no echo; its answers reach the sender alone."""
        channel = inbound.channel_of(incoming.chat)
        user = incoming.user.removeprefix(f"{inbound.TRANSPORT}:")
        thread = inbound.private_thread(channel, user)
        self._private.remember(thread, response_url)
        await self._admit(dataclasses.replace(incoming, thread=thread))

    async def _tell_sender(self, response_url: str) -> None:
        if not response_url:
            return
        try:
            await self._require_web().respond(response_url, NOT_A_MEMBER.format(name=self._me.name))
        except TransportError:
            log.warning("slack: could not answer a slash command", exc_info=True)

    async def _deliver(self, incoming: Incoming) -> None:
        """Return once the update is stored durably, never before: only then may Slack be
        answered, so an acknowledged update survives a kill -9. The hand-over to the
        dispatcher goes on after the answer.

        A store that fails, or is not done when Slack is about to give up, raises (the
        answer is a 500): Slack sends the update again, and the retry is skipped if the
        first store went through meanwhile (its key is in the inbox); that one goes on.
        """
        stored: asyncio.Future[BaseException | None] = asyncio.get_running_loop().create_future()
        self._tasks.spawn(self._admit(incoming, stored), name=f"slack-admit:{incoming.chat}")
        done, _ = await asyncio.wait({stored}, timeout=STORE_SECONDS)
        if not done:
            raise TransportError("storing a Slack update takes too long; Slack will send it again")
        if stored.result() is not None:
            raise TransportError("could not store a Slack update; Slack will send it again")

    async def _admit(
        self, incoming: Incoming, stored: asyncio.Future[BaseException | None] | None = None
    ) -> None:
        """Store the update (skipping one seen before), say so through `stored`, then hand
        it to the dispatcher."""
        try:
            incoming, new = await self._store(incoming)
        except Exception as exc:
            if stored is not None:
                stored.set_result(exc)
            raise
        if stored is not None:
            stored.set_result(None)
        if not new:
            log.info("slack: %s was already received; skipped", incoming.update_key)
        elif self._handle is not None:
            await self._handle(incoming)

    async def _store(self, incoming: Incoming) -> tuple[Incoming, bool]:
        """The update as stored in the inbox, and whether it is new there.

        A thread's follow-up is addressed to the thread's agent first, so the stored
        update is handed out the same way if this process dies before handling it.
        """
        incoming = await self._vetted(incoming)
        # A refused person names no thread's agent; a form's answer is for no agent at all.
        if self._admits(incoming) and not incoming.form:
            opens = inbound.opens_thread(incoming)
            text = await self._threads.route(incoming.thread, incoming.text, opens=opens)
            incoming = dataclasses.replace(incoming, text=text)
        key = incoming.update_key
        return incoming, key is None or await self._intake.is_new(key, incoming.to_json())

    async def _vetted(self, incoming: Incoming) -> Incoming:
        """Ask Slack whether someone served for the channel alone is one of ours."""
        if incoming.outsider or not self._gate.only_by_chat(incoming.user, incoming.chat):
            return incoming
        user = incoming.user.removeprefix(f"{inbound.TRANSPORT}:")
        outsider = await self._members.vet(self._require_web(), self._me, user)
        return dataclasses.replace(incoming, outsider=outsider) if outsider else incoming

    def _admits(self, incoming: Incoming) -> bool:
        return self._gate.admits(incoming.user, incoming.chat, incoming.outsider)

    def _mark_outsider(self, incoming: Incoming, body: dict[str, Any]) -> Incoming:
        """Someone of another workspace, by the team ids in the payload itself."""
        outsider = members.outsider_in_payload(body, self._me)
        return dataclasses.replace(incoming, outsider=outsider) if outsider else incoming

    # -- outbound -------------------------------------------------------------------

    def _in_slack_form(self, message: Outgoing) -> Outgoing:
        return in_slack_form(message, self._settings.command, self._commands)

    async def send(self, message: Outgoing) -> MessageRef:
        message = self._in_slack_form(message)  # `/deck pause <id>`, as people type it here
        channel = inbound.channel_of(message.chat)
        reader = inbound.private_reader(message.thread, channel)
        if reader is not None:
            return await self._private.send(self._require_web(), message, channel, reader)
        thread_ts = inbound.thread_ts_of(message.thread, channel)
        if message.files:
            return await self._send_files(message, channel, thread_ts)
        rendered = render_message(message)
        ts = await self._require_web().post(channel, rendered, thread_ts, message.key)
        if rendered.attachment is not None:
            await self._require_web().upload(channel, thread_ts, rendered.attachment)
        return MessageRef(chat=message.chat, message_id=ts, thread=message.thread)

    async def _send_files(
        self, message: Outgoing, channel: str, thread_ts: str | None
    ) -> MessageRef:
        """Each file uploaded into the conversation (read in a thread), the text its comment."""
        comment = render(message.text)
        ids: list[str] = []
        for path in message.files:
            try:
                content = await asyncio.to_thread(Path(path).read_bytes)
            except OSError as exc:
                raise Refused(
                    f"the file {Path(path).name} cannot be read: {exc.strerror}"
                ) from None
            web = self._require_web()
            ids.append(await web.upload_file(channel, thread_ts, Path(path).name, content, comment))
        return MessageRef(message.chat, ids[0], message.thread, tuple(ids[1:]))

    async def find_sent(self, message: Outgoing, since: datetime) -> MessageRef | None:
        """Our message with `message.key` in its metadata, if Slack has it (a lost answer)."""
        channel = inbound.channel_of(message.chat)
        if message.key is None or inbound.private_reader(message.thread, channel):
            return None  # only messages the channel sees can be looked for
        thread_ts = inbound.thread_ts_of(message.thread, channel)
        ts = await self._require_web().find_posted(
            channel, thread_ts, message.key, since.timestamp()
        )
        return None if ts is None else MessageRef(message.chat, ts, message.thread)

    async def probe(self) -> None:
        """`auth.test`: does Slack answer, and take our token, again?"""
        await self._require_web().whoami()

    async def edit(self, ref: MessageRef, message: Outgoing) -> MessageRef:
        message = self._in_slack_form(message)
        channel = inbound.channel_of(ref.chat)
        if inbound.private_reader(ref.thread, channel):
            return await self.send(message)  # what only one person sees cannot be edited
        rendered = render_message(message)
        try:
            await self._require_web().update(channel, ref.message_id, rendered)
        except SlackRefused as exc:
            if exc.code != "message_not_found":
                raise
            return await self.send(message)  # deleted meanwhile: say it anew
        if rendered.attachment is not None:
            thread_ts = inbound.thread_ts_of(ref.thread, channel)
            await self._require_web().upload(channel, thread_ts, rendered.attachment)
        return ref

    async def download(self, incoming: Incoming, attachment: Attachment, limit: int) -> bytes:
        """A file shared with a message (an audio clip), if it was shared in that chat."""
        channel = inbound.channel_of(incoming.chat)
        return await files.download(self._require_web(), attachment, channel, limit)

    async def typing(self, chat: str) -> None:
        return None  # Slack shows no typing indicator for bots; "working…" says it

    answers_by_form = True  # only the modal's answer counts, never the next thread message

    async def ask_text(self, press: Incoming, request: TextRequest) -> MessageRef | None:
        """Open a modal for the presser with the press's trigger (3 seconds, once)."""
        if not press.press_id:
            raise TransportError("Slack gave this press no trigger to open a form with")
        await self._require_web().open_view(press.press_id, forms.modal(request, press))
        return None

    async def delete(self, ref: MessageRef) -> None:
        await self._require_web().delete(inbound.channel_of(ref.chat), ref.message_id)

    async def answer_press(self, press: Incoming, text: str, *, alert: bool) -> None:
        """A refusal is shown to the presser alone; an accepted press shows on the card."""
        if not alert:
            return
        channel = inbound.channel_of(press.chat)
        user = press.user.removeprefix(f"{inbound.TRANSPORT}:")
        thread_ts = inbound.thread_ts_of(press.thread, channel)
        shown = chat_command(text, self._settings.command, self._commands)
        await self._require_web().ephemeral(channel, user, escape(shown), thread_ts)

    def _require_web(self) -> SlackWeb:
        if self._web is None:
            raise TransportError("The Slack transport is not started")
        return self._web


class _OurClientWins(logging.Filter):
    """bolt reads SLACK_BOT_TOKEN by itself and warns that the client's token is used
    instead, and that `authorize` (our `KnownIdentity`) wins over the client's token;
    that is how we want it, so the warnings are noise at every start."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(NOISE)


def _bolt_logger() -> logging.Logger:
    logger = logging.getLogger(f"{__name__}.bolt")
    if not any(isinstance(f, _OurClientWins) for f in logger.filters):
        logger.addFilter(_OurClientWins())
    return logger
