"""The environment of a coding agent's CLI (Claude Code, Codex): an allowlist, nothing else.

The same rule as every child (`roster.children`): the bot's allowlisted variables whose
values hold no credential, plus the agent's own `env` table with its `env:`/`secret:`
references resolved. The Claude SDK starts its CLI with the bot's whole environment
under what it is given, so for it `unset_others` names every other variable of the bot's
environment for `env -u` to drop before the CLI starts (names only: no value is put on
a command line).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping

from roster.children import child_environment
from roster.refs import SecretSource, resolve

# Variables the CLIs themselves need to stay on this machine (no telemetry, no updates).
QUIET = {
    "DISABLE_TELEMETRY": "1",
    "DISABLE_AUTOUPDATER": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
}


def agent_environment(env: Mapping[str, str], secrets: SecretSource) -> dict[str, str]:
    """The allowlist, and this agent's own `env` with its references resolved."""
    declared = {key: resolve(value, secrets) for key, value in env.items()}
    return child_environment(declared, redact=secrets.redact)


def unset_others(keep: Mapping[str, str]) -> list[str]:
    """`env -u NAME ...` arguments dropping every variable of ours that `keep` lacks."""
    words = []
    for name in sorted(os.environ):
        if name not in keep:
            words += ["-u", name]
    return words


def env_program() -> str:
    """The `env` program (coreutils), by absolute path: PATH may be the agent's own."""
    return shutil.which("env") or "/usr/bin/env"


def setsid_program() -> str | None:
    """`setsid` (util-linux), to start the CLI in a process group of its own, if present."""
    return shutil.which("setsid")
