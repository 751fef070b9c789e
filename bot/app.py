"""Start-up and shutdown: storage, then the roster and services, then the transports.

Everything is entered into one AsyncExitStack, so a partial start unwinds in reverse.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import timedelta
from functools import partial
from typing import TextIO

from bot import messages
from bot.access import Access
from bot.commands import Commands, command_table, inbox_form
from bot.config import Config
from bot.credentials import learn_credentials
from bot.deck import Deck
from bot.delivery.outbox import ADMIN_SUBJECT
from bot.delivery.postman import Postman
from bot.diskspace import telling_when_full
from bot.findings import CheckStatus
from bot.intake import actions, files
from bot.intake.dispatcher import Dispatcher
from bot.intake.routing import routing_for
from bot.jobruns import halt_scheduler, open_scheduler
from bot.liveness import Liveness
from bot.preflight import users_finding
from bot.redaction import redacting_logs
from bot.runs import interrupted
from bot.runs.approvals import Approvals
from bot.runs.brakes import Brakes
from bot.runs.breaker import Breaker
from bot.runs.budget import Budgets
from bot.runs.interrupted import Cut
from bot.runs.runner import Runner
from bot.toolhost import ToolHost, toolbox_for
from bot.transports.console import ConsoleTransport
from bot.types import Incoming, Outgoing, Transport
from roster.children import KILL_GRACE_SECONDS
from roster.errors import ReferenceNotFound
from roster.llm import ModelClient, ModelSettings
from roster.pricing import PriceTable
from roster.refs import SecretSource, resolve
from roster.roster import Roster
from storage.audit import AuditLog
from storage.clock import Clock, SystemClock
from storage.db import Database
from storage.inbox import Inbox
from storage.memory import Memory
from storage.processes import Processes, process_id
from storage.secrets import Vault
from storage.threads import ThreadAgents
from storage.writer import WriteBehind

log = logging.getLogger(__name__)

SWEEP_SECONDS = 15.0
PRUNE_SECONDS = 24 * 3600.0
CONSOLE_HISTORY = "console_history"  # in the data directory, mode 0600
# After cancelling: long enough for a command's process group to be killed, and a little more.
CANCELLED_WAIT_SECONDS = KILL_GRACE_SECONDS + 3.0


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
        deck = assemble(config, db=db, writer=writer, clock=clock, vault=vault, processes=processes)
        deck.writer = writer
        stack.push_async_callback(deck.model.close)
        if config.metrics.enabled:  # first in, last out: counts the whole start and stop
            from bot.metrics import MetricsServer

            deck.metrics = await stack.enter_async_context(MetricsServer(deck))
        commands = command_table()
        stored = inbox_form(commands)  # `/secret set` values never reach the database
        inbox = Inbox(db=db, writer=writer, clock=clock, processes=processes, stored=stored)
        dispatcher = Dispatcher(
            deck=deck, commands=commands, on_handled=inbox.mark_handled, claim=inbox.claim
        )
        cut = await interrupted.take_over(
            processes, db=deck.db, clock=deck.clock, roster=deck.roster, audit=deck.audit
        )  # before any new work starts
        await deck.brakes.budgets.load()
        if transports is None:
            threads = ThreadAgents(db=db, clock=clock)
            transports = build_transports(
                config,
                inbox=inbox,
                threads=threads,
                stdin=stdin,
                stdout=stdout,
                secrets=vault,
                postman=deck.postman,
                access=deck.access,
                audit=deck.audit,
                commands=commands,
            )
        for transport in transports:
            deck.postman.add(transport)
        await stack.enter_async_context(open_scheduler(deck, [t.name for t in transports]))
        links = deck.links
        assert links is not None  # open_scheduler started them
        for transport in transports:
            await transport.start(dispatcher.handle, on_outage=partial(links.down, transport.name))
            stack.push_async_callback(transport.stop)
        stack.enter_context(telling_when_full(deck))
        liveness = Liveness(deck=deck, processes=processes, inbox=inbox, handle=dispatcher.handle)
        await stack.enter_async_context(liveness)  # beats until the work below has finished
        stack.push_async_callback(finish_work, deck, hurry)
        stack.push_async_callback(halt_scheduler, deck)  # no new job runs while work drains
        if config.dashboard.enabled:  # stops first: no new presses while work drains
            from bot.dashboard import Dashboard

            deck.dashboard = await stack.enter_async_context(Dashboard(deck))
        deck.started_at = clock.now()
        deck.ready.set()
        sweeper = asyncio.create_task(sweep_expired(deck), name="approval-expiry")
        stack.push_async_callback(_cancel, sweeper)
        pruner = asyncio.create_task(prune_attachments(deck), name="attachments-prune")
        stack.push_async_callback(_cancel, pruner)
        await recover(deck, dispatcher, inbox, cut)
        yield deck, transports


async def beating_process(config: Config, *, db: Database, clock: Clock) -> Processes:
    """This process, with its first heartbeat written (before it takes any run over)."""
    stale = timedelta(seconds=config.deck.process_stale_seconds)
    processes = Processes(db=db, clock=clock, me=process_id(), stale_after=stale)
    await processes.beat()
    return processes


def assemble(
    config: Config,
    *,
    db: Database,
    writer: WriteBehind,
    clock: Clock,
    vault: Vault,
    processes: Processes,
) -> Deck:
    audit = AuditLog(db=db, writer=writer, clock=clock, redact=vault.redact)
    memory = Memory(db=db, writer=writer, clock=clock, redact=vault.redact)
    model = ModelClient(model_settings(config, vault))
    host = ToolHost()
    prices = PriceTable(config.prices)
    tools = toolbox_for(config, notes=memory, host=host)
    roster = Roster.build(
        config.agents,
        model=model,
        tools=tools,
        secrets=vault,
        prices=prices,
        bindings=config.secrets,
    )
    access = Access(config.users, console_user=config.console.user, chat_roles=config.chat_roles())
    postman = Postman(redact=vault.redact)
    approvals = Approvals(db=db, audit=audit, postman=postman, access=access, clock=clock)
    brakes = Brakes(
        budgets=Budgets(db=db, clock=clock, entries=config.budgets),
        breaker=Breaker(config.deck.breaker_failures),
        roster=roster,
        postman=postman,
        audit=audit,
        admin_chat=config.deck.admin_chat,
        price=lambda _agent, usage: usage.cost,  # priced per call, by the model that answered
    )
    runner = Runner(
        db=db,
        writer=writer,
        memory=memory,
        audit=audit,
        postman=postman,
        roster=roster,
        approvals=approvals,
        clock=clock,
        memory_turns=config.deck.memory_turns,
        brakes=brakes,
        processes=processes,
        scrubber=vault.scrubber,
        files_root=config.deck.data_path(),
        file_limit=config.deck.max_file_bytes,
    )
    routing = routing_for(
        config, roster=roster, model=model, prices=prices, audit=audit, clock=clock
    )
    deck = Deck(
        config=config,
        db=db,
        clock=clock,
        audit=audit,
        memory=memory,
        roster=roster,
        access=access,
        postman=postman,
        approvals=approvals,
        runner=runner,
        brakes=brakes,
        model=model,
        vault=vault,
        routing=routing,
    )
    host.bind(deck)
    return deck


def model_settings(config: Config, secrets: SecretSource) -> ModelSettings:
    try:
        key = resolve(config.llm.api_key, secrets) if config.llm.api_key else None
    except ReferenceNotFound:
        key = None  # llm agents are then listed as unavailable, with the reason
    return ModelSettings(
        base_url=config.llm.base_url or os.environ.get("OPENAI_BASE_URL") or None,
        api_key=key or None,
        timeout=config.llm.timeout,
        max_retries=config.llm.max_retries,
    )


def build_transports(
    config: Config,
    *,
    inbox: Inbox,
    threads: ThreadAgents,
    stdin: TextIO | None,
    stdout: TextIO | None,
    secrets: SecretSource,
    postman: Postman,
    access: Access,
    audit: AuditLog,
    commands: Commands,
) -> list[Transport]:
    """The transports the config names; their tokens may be `secret:` references."""
    transports: list[Transport] = []
    if config.telegram is not None:
        from bot.transports.telegram import TelegramTransport

        def unreadable(why: str) -> None:
            audit.record("telegram", "refused.unreadable", reason=why)

        transports.append(
            TelegramTransport(
                config.telegram,
                inbox=inbox,
                commands=commands,
                secrets=secrets,
                on_unreadable=unreadable,
            )
        )
    if config.slack is not None:
        from bot.transports.slack import SlackTransport

        transports.append(
            SlackTransport(
                config.slack,
                inbox=inbox,
                threads=threads,
                postman=postman,
                commands=commands,
                gate=access,
                secrets=secrets,
            )
        )
    if config.console_enabled():
        history = config.deck.data_path() / CONSOLE_HISTORY
        transports.append(
            ConsoleTransport(
                user=config.console.user,
                stdin=stdin,
                stdout=stdout,
                history=history,
                commands=commands,
            )
        )
    return transports


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


async def sweep_expired(deck: Deck) -> None:
    """Now and then: expired approvals deny (nothing runs), overdue ones escalate."""
    while True:
        await asyncio.sleep(SWEEP_SECONDS)
        try:
            await actions.sweep_approvals(deck)
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


async def recover(deck: Deck, dispatcher: Dispatcher, inbox: Inbox, cut: list[Cut]) -> None:
    """Pick up what the last process left: interrupted runs, lost cards, unhandled updates."""
    if deck.outbox is not None:  # messages a crash left undelivered go first
        await deck.outbox.start_delivering()
    reported = await interrupted.report(cut, postman=deck.postman, approvals=deck.approvals)
    # Counted before the cards go out again: a press right after is not "waiting" then.
    pending = len(await deck.approvals.pending()) - len(reported)
    cards = await repost_lost_cards(deck, skip=reported)
    resumed = await actions.resume_decided(deck)
    unhandled = await inbox.take_over()
    for item in unhandled:
        await dispatcher.handle(Incoming.from_json(item.payload))
    if deck.db.created:  # a new deck: nothing was left to pick up
        note = "agentdeck started. Send /start in a chat to see who may do what."
    else:
        note = (
            f"agentdeck is back. Interrupted runs: {interrupted.describe(cut)};"
            f" approvals waiting: {pending}"
            f" ({cards} card(s) posted again); updates handled again: {len(unhandled)}."
        )
    if resumed:
        note += f" Decisions carried out now (taken just before the stop): {resumed}."
    log.info(note)
    admin = deck.config.deck.admin_chat
    if admin and deck.postman.knows(admin):
        with contextlib.suppress(Exception):
            await deck.postman.keep(
                back_key(deck), Outgoing.plain(admin, note), subject=ADMIN_SUBJECT
            )


def back_key(deck: Deck) -> str:
    """The "agentdeck is back" note's key: one per start of one process."""
    started = deck.started_at.isoformat() if deck.started_at else ""
    return f"back:{socket.gethostname()}:{os.getpid()}:{started}"


async def repost_lost_cards(deck: Deck, *, skip: set[str] | frozenset[str] = frozenset()) -> int:
    """Post pending cards again where they were lost (the console forgets its prompts);
    `skip`: cards posted a moment ago (a run's report with its Run again button)."""
    posted = 0
    for approval in await deck.approvals.pending():
        if approval.id in skip:
            continue
        lost = not approval.card.get("copies") or approval.chat_id.startswith("console:")
        if lost and deck.postman.knows(approval.chat_id):
            await deck.approvals.post_card(approval)
            posted += 1
    return posted
