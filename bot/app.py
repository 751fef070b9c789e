"""Start-up and shutdown: storage, then the deck's graph, then the transports started.

The graph is built in `bot.graph` (nothing started, nothing set afterwards; the
transports too, each given the deck's side, the postman, as it starts); here each
part that runs is entered into one AsyncExitStack, in order, so a partial start
unwinds in reverse, as APScheduler 4 starts its parts. What the last process left is
picked up last (`bot.recovery`). `open_app` yields the started `App`; `open_deck` the
deck and its transports.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, TextIO

from bot import messages
from bot.commands import command_table, inbox_form
from bot.config import Config, TelegramMode
from bot.credentials import learn_credentials
from bot.deck import Deck
from bot.diskspace import telling_when_full
from bot.errors import ConfigError
from bot.findings import CheckStatus
from bot.graph import Graph, build_graph
from bot.intake import actions, files
from bot.intake.actions import Actions
from bot.intake.dispatcher import Dispatcher
from bot.jobruns import halt_scheduler, open_scheduler, sync_config_jobs
from bot.liveness import Liveness
from bot.preflight import users_finding
from bot.recovery import recover
from bot.redaction import redacting_logs
from bot.runs import interrupted
from bot.trigger_spec import WebhooksSection
from bot.triggers.server import TriggerListener, WebhookRoutes, mount
from bot.triggers.service import Triggers
from bot.types import Transport
from roster.children import KILL_GRACE_SECONDS
from storage.clock import Clock, SystemClock
from storage.db import Database
from storage.inbox import Inbox
from storage.processes import Processes, process_id
from storage.secrets import Vault
from storage.writer import WriteBehind

if TYPE_CHECKING:
    from bot.dashboard import Dashboard
    from bot.mcp_serve.server import HttpListener
    from bot.metrics import MetricsServer

log = logging.getLogger(__name__)

SWEEP_SECONDS = 15.0
PRUNE_SECONDS = 24 * 3600.0
# After cancelling: long enough for a command's process group to be killed, and a little more.
CANCELLED_WAIT_SECONDS = KILL_GRACE_SECONDS + 3.0


@dataclass(frozen=True, slots=True)
class App:
    """A started deck: the deck, its transports, and what is built on the deck."""

    deck: Deck
    actions: Actions  # what a message or a press sets off (the dashboard acts through it)
    transports: list[Transport]
    dashboard: Dashboard | None  # None when [dashboard] enabled = false
    metrics: MetricsServer | None  # None when [metrics] enabled = false
    mcp_http: HttpListener | None  # None unless [mcp] port is set


@contextlib.asynccontextmanager
async def open_deck(
    config: Config,
    *,
    clock: Clock | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    transports: list[Transport] | None = None,
    hurry: asyncio.Event | None = None,
) -> AsyncIterator[tuple[Deck, list[Transport]]]:
    """`open_app`, as the deck and its transports."""
    opened = open_app(
        config, clock=clock, stdin=stdin, stdout=stdout, transports=transports, hurry=hurry
    )
    async with opened as app:
        yield app.deck, app.transports


@contextlib.asynccontextmanager
async def open_app(
    config: Config,
    *,
    clock: Clock | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    transports: list[Transport] | None = None,
    hurry: asyncio.Event | None = None,
) -> AsyncIterator[App]:
    """Build and start everything; on exit, finish work and stop in reverse order.

    `transports` replaces the ones the config names (tests, embedding). `hurry`, once set,
    ends the stop's grace for running work (a second SIGTERM or Ctrl-C).
    """
    clock = clock or SystemClock()
    async with AsyncExitStack() as stack:
        db = await stack.enter_async_context(Database(config.deck.database()))
        writer = await stack.enter_async_context(WriteBehind(db))
        vault = await Vault(db=db, data_dir=config.deck.data_path(), clock=clock).load()
        learn_credentials(config, vault.scrubber)  # scrubbed from here on, like vault values
        stack.enter_context(redacting_logs(vault.redact))
        if (users := users_finding(config)).verdict is CheckStatus.WARN:
            log.warning(users.detail)  # stderr: a chat deck nobody may use yet
        processes = await beating_process(config, db=db, clock=clock)
        commands = command_table()  # the menu the transports show (specs only)
        stored = inbox_form(commands)  # `/secret set` values never reach the database
        inbox = Inbox(db=db, writer=writer, clock=clock, processes=processes, stored=stored)
        graph = build_graph(
            config,
            db=db,
            writer=writer,
            clock=clock,
            vault=vault,
            processes=processes,
            inbox=inbox,
            transports=transports,
            stdin=stdin,
            stdout=stdout,
        )
        deck = graph.deck
        check_reports(config, graph.transports)
        stack.push_async_callback(close_clients, deck)  # after the work: runs still use them
        metrics = None
        if config.metrics.enabled:  # first in, last out: counts the whole start and stop
            from bot.metrics import MetricsServer

            metrics = await stack.enter_async_context(MetricsServer(deck))
        dispatcher = Dispatcher(
            config=graph.current_config,
            access=deck.access,
            audit=deck.audit,
            approvals=deck.approvals,
            invites=deck.invites,
            postman=deck.postman,
            redact=deck.vault.redact,
            tasks=deck.tasks,
            lanes=deck.lanes,
            ready=deck.ready,
            actions=graph.actions,
            files=graph.files,
            voice=graph.voice,
            welcome=graph.welcome,
            commands=graph.commands,
            on_handled=inbox.mark_handled,
            claim=inbox.claim,
        )
        cut = await interrupted.take_over(
            processes, db=deck.db, clock=deck.clock, roster=deck.roster, audit=deck.audit
        )  # before any new work starts
        await deck.brakes.budgets.load()
        await deck.invites.load()  # before any message is let in: they are users too
        triggers = Triggers(deck) if config.triggers else None
        # The triggers' routes on Telegram's webhook listener, when it runs (not in tests).
        routes = webhook_routes(triggers, config) if transports is None else None
        await start_delivery_and_jobs(stack, graph)
        for transport in graph.transports:
            down = partial(deck.links.down, transport.name)
            await transport.start(
                dispatcher.handle, on_outage=down, postman=deck.postman, routes=routes
            )
            stack.push_async_callback(transport.stop)
        stack.enter_context(telling_when_full(deck))
        liveness = Liveness(deck=deck, processes=processes, inbox=inbox, handle=dispatcher.handle)
        await stack.enter_async_context(liveness)  # beats until the work below has finished
        stack.push_async_callback(finish_work, deck, hurry)
        stack.push_async_callback(halt_scheduler, deck.scheduler)  # no new job runs meanwhile
        mcp_http = await serve_mcp_http(stack, deck)  # stopped before work drains
        dashboard = None
        if config.dashboard.enabled:  # stops first: no new presses while work drains
            from bot.dashboard import Dashboard

            dashboard = await stack.enter_async_context(Dashboard(deck, graph.actions))
        await serve_triggers(stack, triggers, config.webhooks, shared=routes is not None)
        deck.ready.set()
        start_sweeps(stack, deck)
        await recover(deck, dispatcher, inbox, cut, triggers)
        yield App(
            deck=deck,
            actions=graph.actions,
            transports=graph.transports,
            dashboard=dashboard,
            metrics=metrics,
            mcp_http=mcp_http,
        )


async def start_delivery_and_jobs(stack: AsyncExitStack, graph: Graph) -> None:
    """The links, the outbox and (after the `[[jobs]]` sync) the scheduler running, until
    `stack` closes."""
    deck = graph.deck
    await stack.enter_async_context(deck.links)
    await stack.enter_async_context(deck.outbox)
    await sync_config_jobs(deck.config, store=graph.jobs, clock=deck.clock)
    await stack.enter_async_context(open_scheduler(deck.scheduler))


def check_reports(config: Config, transports: list[Transport]) -> None:
    """A job's or trigger's report chat that no running transport posts to stops the start:
    its runs would answer nowhere."""
    if problems := config.unserved_reports([t.name for t in transports]):
        raise ConfigError(f"{config.source}: " + "; ".join(problems))


async def beating_process(config: Config, *, db: Database, clock: Clock) -> Processes:
    """This process, with its first heartbeat written (before it takes any run over)."""
    stale = timedelta(seconds=config.deck.process_stale_seconds)
    processes = Processes(db=db, clock=clock, me=process_id(), stale_after=stale)
    await processes.beat()
    return processes


def webhook_routes(triggers: Triggers | None, config: Config) -> WebhookRoutes | None:
    """The triggers' routes, to mount on Telegram's webhook listener when it runs."""
    hook = config.telegram
    if triggers is None or hook is None or hook.mode is not TelegramMode.WEBHOOK:
        return None
    return partial(mount, triggers=triggers, limit=config.webhooks.max_body_bytes)


async def serve_triggers(
    stack: AsyncExitStack, triggers: Triggers | None, settings: WebhooksSection, *, shared: bool
) -> None:
    """Triggers on a listener of their own, unless Telegram's webhook serves them."""
    if triggers is not None and not shared:
        await stack.enter_async_context(TriggerListener(triggers, settings))


async def close_clients(deck: Deck) -> None:
    """The MCP servers stopped, then the model providers' connections closed."""
    try:
        await deck.mcp.close()
    finally:
        await deck.providers.close()


async def serve_mcp_http(stack: AsyncExitStack, deck: Deck) -> HttpListener | None:
    """The deck served to MCP clients over streamable HTTP, when `[mcp] port` is set."""
    if deck.config.mcp.port is None:
        return None
    from bot.mcp_serve.server import HttpListener

    return await stack.enter_async_context(HttpListener(deck))


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def finish_work(deck: Deck, hurry: asyncio.Event | None = None) -> None:
    """Let running work finish, then cancel what is left; neither wait is unbounded.

    The grace is `[deck] stop_grace_seconds`, cut short once `hurry` is set. Work still
    running a while after its cancel is logged and left behind: the stop goes on.
    """
    grace = deck.config.deck.stop_grace_seconds
    if deck.tasks:  # what a stop waits for, in the log before the wait
        log.info("stopping: %d task(s) running; waiting up to %s s", len(deck.tasks), grace)
    if await deck.tasks.settle(grace, unless=hurry):
        return
    if hurry is not None and hurry.is_set():
        log.warning("asked again to stop; cancelling running work now")
    else:
        log.warning("work still running after %s s; cancelling it", grace)
    deck.runner.stop(None, reason=messages.SHUTTING_DOWN)  # runs say why they ended
    deck.tasks.cancel()  # and whatever else is left (handlers, queued lane work)
    if not await deck.tasks.settle(CANCELLED_WAIT_SECONDS):
        # A task that ignores cancelling must not hold the stop (and the storage) forever.
        log.error(
            "still running %s s after cancelling, left behind: tasks %s; runs %s",
            CANCELLED_WAIT_SECONDS,
            ", ".join(deck.tasks.names()),
            ", ".join(f"{run} ({agent})" for run, agent in deck.runner.active().items()) or "none",
        )


def start_sweeps(stack: AsyncExitStack, deck: Deck) -> None:
    """Expired approvals and old attachments swept in the background until `stack` closes."""
    sweeper = asyncio.create_task(sweep_expired(deck), name="approval-expiry")
    stack.push_async_callback(_cancel, sweeper)
    pruner = asyncio.create_task(prune_attachments(deck), name="attachments-prune")
    stack.push_async_callback(_cancel, pruner)


async def sweep_expired(deck: Deck) -> None:
    """Now and then: expired approvals deny (nothing runs), overdue ones escalate."""
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        try:
            await actions.sweep_approvals(deck)
            await deck.invites.load()  # another process may have added or removed someone
            await deck.invites.prune()
        except Exception:
            log.exception("sweeping approvals failed; trying again later")


async def prune_attachments(deck: Deck) -> None:
    """At start and then daily: files sent to agents go after `[deck] attachments_days`."""
    while True:
        days = deck.config.deck.attachments_days
        try:
            root, now = deck.config.deck.data_path(), deck.clock.now()
            removed = await asyncio.to_thread(files.prune, root, now, days)
            if removed:
                log.info("deleted %s attachment folder(s) older than %g days", removed, days)
        except OSError:
            log.exception("deleting old attachments failed; trying again tomorrow")
        await asyncio.sleep(PRUNE_SECONDS)
