"""What would break the first message, found without starting anything or going online.

For `agentdeck check` and `agentdeck doctor`: each command agent's program is on the
PATH its children get (or is a file that exists) and its `cwd` is a directory; the
dashboard's, the metrics' and the triggers' ports are free to listen on; a Telegram or
Slack deck lists at least one `[[users]]` (otherwise nobody may use it); each stdio MCP
server's program is there; each job and trigger reports to a chat of a transport the
deck runs. A port in use is a warning, not a failure: it may be this very deck, already
running.
"""

from __future__ import annotations

import errno
import importlib.util
import os
import shutil
import socket

from bot.config import Config, TelegramMode
from bot.findings import Finding, fail, ok, warn
from roster.spec import ClaudeAgentSpec, CodexAgentSpec, CommandAgentSpec

REFERENCE_PREFIXES = ("env:", "secret:")


def preflight(config: Config) -> list[Finding]:
    """The offline checks, in order: agents, ports, users, report chats."""
    mcp = [mcp_finding(config)] if config.mcp_servers else []
    reports = [reports_finding(config)] if config.jobs or config.triggers else []
    return [agents_finding(config), *mcp, *ports_findings(config), users_finding(config), *reports]


def reports_finding(config: Config) -> Finding:
    """Each job and trigger reports to a chat of a transport the config runs."""
    if problems := config.unserved_reports(config.transport_names()):
        return fail("reports", "; ".join(problems))
    return ok("reports", "every job and trigger reports where a transport posts")


def mcp_finding(config: Config) -> Finding:
    """Each stdio MCP server's program is there and its `cwd` is a directory."""
    problems = []
    for server in config.mcp_servers:
        if server.cwd is not None and not os.path.isdir(server.cwd):
            problems.append(f"mcp server {server.name}: cwd {server.cwd} does not exist")
        if not server.command:
            continue
        program = server.command[0]
        declared = server.env.get("PATH", "")
        path = declared if declared and not declared.startswith(REFERENCE_PREFIXES) else None
        path = path or os.environ.get("PATH", "")
        found = os.access(program, os.X_OK) if "/" in program else shutil.which(program, path=path)
        if not found:
            problems.append(f"mcp server {server.name}: command `{program}` not found")
    if problems:
        return fail("mcp servers", "; ".join(problems))
    return ok("mcp servers", f"{len(config.mcp_servers)} configured: programs found")


# --- agents --------------------------------------------------------------------------


def agents_finding(config: Config) -> Finding:
    commands = [a for a in config.agents if isinstance(a, CommandAgentSpec) and a.enabled]
    problems = [p for spec in commands for p in command_problems(spec)]
    coding = [a for a in config.agents if isinstance(a, ClaudeAgentSpec | CodexAgentSpec)]
    problems += [p for spec in coding if spec.enabled for p in coding_problems(spec)]
    if problems:
        return fail("agents", "; ".join(problems))
    said = f"{len(commands)} command agent(s)"
    if coding:
        said += f", {len(coding)} coding agent(s)"
    return ok("agents", f"{said}: programs found, directories exist")


def coding_problems(spec: ClaudeAgentSpec | CodexAgentSpec) -> list[str]:
    """A Claude Code or Codex agent: its cwd is a directory, its CLI is there."""
    problems = []
    if not os.path.isdir(spec.cwd):
        problems.append(f"agent {spec.name}: cwd {spec.cwd} does not exist")
    if (
        isinstance(spec, ClaudeAgentSpec)
        and spec.permission_mode == "bypassPermissions"
        and os.geteuid() == 0
    ):
        problems.append(f"agent {spec.name}: Claude Code refuses bypassPermissions as root")
    program = spec.cli
    if program is None:  # the CLI bundled in the SDK wheel (the `claude` extra)
        if importlib.util.find_spec("claude_agent_sdk") is None:
            problems.append(
                f"agent {spec.name}: claude-agent-sdk is not installed (the `claude` extra)"
            )
        return problems
    found = os.access(program, os.X_OK) if "/" in program else shutil.which(program)
    if not found:
        problems.append(f"agent {spec.name}: CLI `{program}` not found")
    return problems


def command_problems(spec: CommandAgentSpec) -> list[str]:
    """What stops this agent's command lines from starting, one sentence each."""
    problems = []
    if spec.cwd is not None and not os.path.isdir(spec.cwd):
        problems.append(f"agent {spec.name}: cwd {spec.cwd} does not exist")
    path = _child_path(spec)
    for program in sorted(_programs(spec)):
        if "{" in program:  # filled from the message at run time: nothing to look for
            continue
        if "/" in program:
            if not os.access(program, os.X_OK):
                problems.append(f"agent {spec.name}: command `{program}` is not an executable")
        elif shutil.which(program, path=path) is None:
            problems.append(f"agent {spec.name}: command `{program}` not found on PATH")
    return problems


def _programs(spec: CommandAgentSpec) -> set[str]:
    lines = [spec.command, spec.preview, *spec.actions.values()]
    return {line[0] for line in lines if line}


def _child_path(spec: CommandAgentSpec) -> str:
    """The PATH the agent's children get: its own `env` PATH, else the bot's."""
    declared = spec.env.get("PATH", "")
    if declared and not declared.startswith(REFERENCE_PREFIXES):
        return declared
    return os.environ.get("PATH", os.defpath)


# --- ports ---------------------------------------------------------------------------


def ports_findings(config: Config) -> list[Finding]:
    wanted = []
    if config.dashboard.enabled:
        wanted.append(("dashboard", config.dashboard.listen, config.dashboard.port))
    if config.metrics.enabled:
        wanted.append(("metrics", config.metrics.listen, config.metrics.port))
    hook = config.telegram
    if config.triggers and not (hook is not None and hook.mode is TelegramMode.WEBHOOK):
        wanted.append(("webhooks", config.webhooks.listen, config.webhooks.port))
    return [port_finding(section, host, port) for section, host, port in wanted]


def port_finding(section: str, host: str, port: int) -> Finding:
    check = f"{section} port"
    if port == 0:
        return ok(check, "any free port (port = 0)")
    reason = bind_problem(host, port)
    if reason is None:
        return ok(check, f"{host}:{port} is free")
    return warn(
        check,
        f"{host}:{port} {reason}: change [{section}] listen/port, or stop what uses it "
        "(fine if it is this deck, already running)",
    )


def bind_problem(host: str, port: int) -> str | None:
    """Why listening on host:port would fail now, or None (binds, as the server would)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as aiohttp does
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "is in use"
            return f"cannot be listened on ({exc.strerror or exc})"
    return None


# --- users ---------------------------------------------------------------------------


def users_finding(config: Config) -> Finding:
    chats = [name for name, on in (("Telegram", config.telegram), ("Slack", config.slack)) if on]
    if config.users:
        return ok("users", f"{len(config.users)} in [[users]]")
    if chats:
        return warn(
            "users",
            f"no [[users]]: nobody may use the {' and '.join(chats)} bot yet; add yourself, "
            'e.g. [[users]] id = "telegram:123456789" role = "admin"',
        )
    return ok("users", "none listed (the console's user is an admin)")
