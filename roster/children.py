"""Child processes: the one place that starts them, builds their environment, stops them.

Every command the bot runs for an agent — a command agent, its preview, `run_command`,
a `[[tools]]` template — starts here, in a process group of its own, with an
environment built from an allowlist and nothing else:

- from the bot's own environment only `INHERITED` names (and `LC_*`): what programs
  need to find themselves and speak the user's locale. LOGNAME and USER are who runs
  it (some tools read one, some the other), SHELL is what CLI agents start commands
  with, TMPDIR where the host wants temporary files. Never `AGENTDECK_*`, and never a
  variable whose value holds a credential the bot knows, whatever its name;
- plus the agent's own `env` table, its references already resolved: what an agent
  declares it gets, and nothing it does not declare.

A child is stopped as a whole — its group and whatever left the group, TERM, then KILL
after a grace — so a command's own children do not live on after a timeout or `/stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable, Mapping, Sequence

from roster.errors import CommandNotStarted
from roster.process_tree import any_alive, kill, still_running, terminate
from roster.spec import BOTS_OWN_PREFIX

INHERITED = frozenset({"PATH", "HOME", "LANG", "TZ", "TERM", "USER", "LOGNAME", "SHELL", "TMPDIR"})
KILL_GRACE_SECONDS = 2.0

Redact = Callable[[str], str]


def inherited(name: str) -> bool:
    """Whether a child may get this variable of the bot's environment (by name)."""
    return (name in INHERITED or name.startswith("LC_")) and not name.startswith(BOTS_OWN_PREFIX)


def child_environment(declared: Mapping[str, str], *, redact: Redact) -> dict[str, str]:
    """The environment of a child: the allowlist, then what its agent declared.

    `redact` is the bot's scrubber: an inherited value it would change holds a
    credential, and is left out. Declared values are the agent's own and pass as given.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if inherited(name) and redact(value) == value
    }
    env.update(declared)
    return env


async def start_child(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str | None = None,
    stdin: int = asyncio.subprocess.DEVNULL,
    limit: int = 2**16,
) -> asyncio.subprocess.Process:
    """Start `argv` (no shell) in a new process group; output and errors on one pipe.

    A cancel (`/stop`) while the child is being started still stops its group: the
    fork has happened by then, and the child would otherwise live on unseen. A program
    or working directory that is not there is a `CommandNotStarted` that names it.
    """
    starting = asyncio.ensure_future(
        asyncio.create_subprocess_exec(
            *argv,
            stdin=stdin,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            cwd=cwd,
            env=dict(env),
            start_new_session=True,  # its own process group, so a kill takes its children too
            limit=limit,  # the longest line `readline` takes
        )
    )
    try:
        return await asyncio.shield(starting)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await kill_group(await starting)
        raise
    except OSError as exc:
        raise CommandNotStarted(await asyncio.to_thread(why_not_started, argv, cwd, exc)) from None


def why_not_started(argv: Sequence[str], cwd: str | None, exc: OSError) -> str:
    """What stopped `argv` from starting, in words that say what to fix (stats files)."""
    program = argv[0] if argv else ""
    if cwd is not None and not os.path.isdir(cwd):
        return f"the working directory `{cwd}` does not exist (check the agent's cwd)"
    if isinstance(exc, FileNotFoundError):
        if "/" in program:
            return f"command `{program}` does not exist"
        return f"command `{program}` not found on PATH"
    if isinstance(exc, PermissionError):
        return f"command `{program}` is not executable (or its directory is not readable)"
    return f"command `{program}` cannot start: {exc.strerror or exc}"


async def kill_group(process: asyncio.subprocess.Process) -> None:
    """Stop the child and everything it started (`stop_tree`)."""
    await stop_tree(process.pid, process.wait)


async def stop_tree(
    group: int,
    wait: Callable[[], Awaitable[object]] | None = None,
    grace: float = KILL_GRACE_SECONDS,
) -> None:
    """Terminate a process group, then kill what is left of it after `grace`, with all it
    started outside the group (`roster.process_tree`); `wait` reaps the leader.

    The leader's exit is not the end: its children may live on (and hold the output
    pipe open, which asyncio's `wait` waits for too).
    """
    members = await asyncio.to_thread(terminate, group)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(grace):
            # No event tells when the last process of a group is gone: look, now and then.
            while await asyncio.to_thread(still_running, group, members):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
    await asyncio.to_thread(kill, group, members)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(grace):
            if wait is not None:
                await wait()
            while await asyncio.to_thread(any_alive, group, members):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
