"""The object graph of one deck, built in one place and in one order (nothing started).

Each part is given what it uses to its constructor; nothing is assigned after. The
order follows what needs what: the transports (the config's, or those given), then the
direct sender built from them, the transport links and the outbox (the postman sends
through them), then the runner (it hands job reports to `JobReports`), the scheduler's
hooks and the scheduler, the tools' host, and last the agents (their tools reach the
runner: the roster is made empty and filled with them, the way a reload fills it).
`bot.app` starts what is built here, in one exit stack, as PTB's `ApplicationBuilder`
builds and its application starts. After the deck, what handles a message is built from
its parts (never given the deck itself): the actions, the files and voice intake, and
the chat commands (`command_groups`), each group given the collaborators its commands
use; a setting a reload may change is read through `CurrentConfig` (the deck's config,
asked each time).

A transport that uses the deck (Slack echoes slash commands through the postman, the
Telegram webhook serves the triggers' routes) is given it at `start()`, not here: the
postman leads back to the transports through the direct sender.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TextIO

from bot.access import Access
from bot.commands import Command, Commands, bind_commands, command_table
from bot.commands.agents import AgentCommands
from bot.commands.approvals import ApprovalCommands
from bot.commands.audit import AuditCommands
from bot.commands.cost import CostCommands
from bot.commands.dashboard import DashboardCommands
from bot.commands.invites import InviteCommands
from bot.commands.jobs import JobCommands
from bot.commands.memory import MemoryCommands
from bot.commands.models import ModelCommands
from bot.commands.reload import ReloadCommands
from bot.commands.secrets import SecretCommands
from bot.commands.sessions import SessionCommands
from bot.commands.status import StatusCommands
from bot.config import Config, CurrentConfig
from bot.deck import Deck
from bot.delivery.direct import Direct
from bot.delivery.outbox import Outbox
from bot.delivery.postman import Postman
from bot.delivery.transport_links import TransportLinks
from bot.intake.actions import Actions
from bot.intake.files import Files
from bot.intake.routing import routing_for
from bot.intake.voice import Voice
from bot.intake.welcome import Welcome
from bot.invites import Invites
from bot.jobruns import JobReports, JobRuns, report_delivered, scheduler_for
from bot.providers import providers_for
from bot.reload import reload_config
from bot.runs.approvals import Approvals
from bot.runs.brakes import Brakes
from bot.runs.breaker import Breaker
from bot.runs.budget import Budgets
from bot.runs.runner import Runner
from bot.toolhost import ToolHost, toolbox_for
from bot.transports.console import ConsoleTransport
from bot.types import Transport
from roster.mcp.pool import McpPool
from roster.pricing import PriceTable
from roster.refs import SecretSource
from roster.roster import Roster
from storage.audit import AuditLog
from storage.chat_models import ChatModels
from storage.clock import Clock
from storage.db import Database
from storage.inbox import Inbox
from storage.jobs import JobStore
from storage.memory import Memory
from storage.outbox import OutboxStore
from storage.processes import Processes
from storage.secrets import Vault
from storage.sessions import AgentSessions
from storage.tasks import TaskSet
from storage.threads import ThreadAgents
from storage.writer import WriteBehind

CONSOLE_HISTORY = "console_history"  # in the data directory, mode 0600


@dataclass(frozen=True, slots=True)
class Graph:
    """The deck, and the parts of it that only the start-up itself handles."""

    deck: Deck
    transports: list[Transport]  # started by `bot.app`, given the postman as they start
    jobs: JobStore  # `[[jobs]]` are synced into it before the scheduler starts
    actions: Actions  # what a message or a press sets off (the dispatcher, the dashboard)
    files: Files
    voice: Voice
    welcome: Welcome
    current_config: CurrentConfig  # the deck's config, as a reload leaves it
    commands: dict[str, Command]  # the chat commands, bound to their groups


def build_graph(
    config: Config,
    *,
    db: Database,
    writer: WriteBehind,
    clock: Clock,
    vault: Vault,
    processes: Processes,
    inbox: Inbox,
    transports: list[Transport] | None = None,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
) -> Graph:
    """The deck's objects; `transports` replaces the ones the config names (tests)."""
    audit = AuditLog(db=db, writer=writer, clock=clock, redact=vault.redact)
    memory = Memory(db=db, writer=writer, clock=clock, redact=vault.redact)
    providers = providers_for(config, vault)
    choices = ChatModels(db=db, clock=clock)
    sessions = AgentSessions(db=db, clock=clock)
    prices = PriceTable(config.prices)
    access = Access(config.users, console_user=config.console.user, chat_roles=config.chat_roles())
    invites = Invites(db=db, access=access, audit=audit, clock=clock)
    tasks = TaskSet()

    if transports is None:
        transports = build_transports(
            config,
            inbox=inbox,
            threads=ThreadAgents(db=db, writer=writer, clock=clock),
            stdin=stdin,
            stdout=stdout,
            secrets=vault,
            access=access,
            audit=audit,
            commands=command_table(),
        )
    direct = Direct(transports, redact=vault.redact)
    back = asyncio.Event()  # a transport is back: the outbox looks for its messages at once
    links = TransportLinks(
        [t.name for t in transports],
        clock=clock,
        probe=direct.probe,
        on_up=lambda _name: back.set(),
    )
    jobs = JobStore(db=db, clock=clock)
    outbox = Outbox(
        store=OutboxStore(db=db, clock=clock, writer=writer),
        direct=direct,
        clock=clock,
        admin_chat=config.deck.admin_chat,
        links=links,
        on_delivered=[report_delivered(jobs)],
        wake=back,
    )
    postman = Postman(direct, outbox)

    roster = Roster(())  # the agents come last: their tools reach the runner
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
    reports = JobReports(store=jobs, outbox=outbox, writer=writer)
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
        job_reports=reports,
        files_root=config.deck.data_path(),
        file_limit=config.deck.max_file_bytes,
    )
    hooks = JobRuns(
        runner=runner,
        roster=roster,
        postman=postman,
        outbox=outbox,
        store=jobs,
        reports=reports,
        clock=clock,
        tasks=tasks,
    )
    scheduler = scheduler_for(config, db=db, store=jobs, hooks=hooks, clock=clock)
    host = ToolHost(
        roster=roster,
        runner=runner,
        postman=postman,
        audit=audit,
        db=db,
        clock=clock,
        redact=vault.redact,
        timezone=config.deck.timezone,
        scheduler=scheduler,
    )
    tools = toolbox_for(config, notes=memory, host=host)
    # The configured MCP servers, none started yet; `secret:` in their env from the vault.
    mcp = McpPool(
        config.mcp_servers, policies=config.tool_policy, secrets=vault, redact=vault.redact
    )
    roster.replace(
        Roster.build(
            config.agents,
            providers=providers,
            tools=tools,
            secrets=vault,
            prices=prices,
            bindings=config.secrets,
            choices=choices,
            sessions=sessions,
            mcp=mcp,
        )
    )
    routing = routing_for(
        config, roster=roster, providers=providers, prices=prices, audit=audit, clock=clock
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
        providers=providers,
        chat_models=choices,
        agent_sessions=sessions,
        vault=vault,
        routing=routing,
        mcp=mcp,
        invites=invites,
        writer=writer,
        outbox=outbox,
        links=links,
        scheduler=scheduler,
        tasks=tasks,
        started_at=clock.now(),
    )

    def current() -> Config:
        return deck.config  # a reload replaces it: asked each time

    actions = Actions(
        config=current,
        roster=roster,
        access=access,
        audit=audit,
        postman=postman,
        runner=runner,
        routing=routing,
        approvals=approvals,
        tasks=tasks,
    )
    files = Files(config=current, clock=clock, audit=audit, postman=postman, actions=actions)
    welcome = Welcome(roster=roster, access=access, actions=actions)
    return Graph(
        deck=deck,
        transports=transports,
        jobs=jobs,
        actions=actions,
        files=files,
        voice=Voice(config=current, providers=providers, audit=audit, files=files, actions=actions),
        welcome=welcome,
        current_config=current,
        commands=bind_commands(command_groups(deck, current, actions, welcome)),
    )


def command_groups(
    deck: Deck, current: CurrentConfig, actions: Actions, welcome: Welcome
) -> list[object]:
    """Each command group, given what its commands use (and nothing else of the deck)."""

    async def reload(by: str) -> str:
        return (await reload_config(deck, by=by)).text

    invites = InviteCommands(
        config=current,
        access=deck.access,
        audit=deck.audit,
        invites=deck.invites,
        welcome=welcome,
    )
    return [
        invites,
        AgentCommands(
            roster=deck.roster,
            runner=deck.runner,
            brakes=deck.brakes,
            audit=deck.audit,
            mcp=deck.mcp,
            actions=actions,
            welcome=welcome,
            invites=invites,
        ),
        ApprovalCommands(approvals=deck.approvals, access=deck.access, actions=actions),
        AuditCommands(runner=deck.runner, audit=deck.audit),
        CostCommands(config=current, clock=deck.clock, runner=deck.runner, db=deck.db),
        DashboardCommands(config=current, postman=deck.postman, audit=deck.audit),
        JobCommands(
            config=current,
            clock=deck.clock,
            roster=deck.roster,
            audit=deck.audit,
            postman=deck.postman,
            runner=deck.runner,
            scheduler=deck.scheduler,
            redact=deck.vault.redact,
        ),
        MemoryCommands(
            memory=deck.memory, audit=deck.audit, approvals=deck.approvals, roster=deck.roster
        ),
        ModelCommands(
            roster=deck.roster,
            chat_models=deck.chat_models,
            providers=deck.providers,
            audit=deck.audit,
            actions=actions,
        ),
        ReloadCommands(reload=reload),
        SecretCommands(vault=deck.vault, audit=deck.audit, postman=deck.postman),
        SessionCommands(
            agent_sessions=deck.agent_sessions,
            roster=deck.roster,
            audit=deck.audit,
            clock=deck.clock,
        ),
        StatusCommands(
            runner=deck.runner,
            approvals=deck.approvals,
            clock=deck.clock,
            started_at=deck.started_at,
            roster=deck.roster,
            db=deck.db,
            links=deck.links,
            scheduler=deck.scheduler,
        ),
    ]


def build_transports(
    config: Config,
    *,
    inbox: Inbox,
    threads: ThreadAgents,
    stdin: TextIO | None,
    stdout: TextIO | None,
    secrets: SecretSource,
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
