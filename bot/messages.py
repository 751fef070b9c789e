"""What users read when something is refused or goes wrong: short, and says what to do."""

from __future__ import annotations

from bot.config import Role

ACTION_CHANGED = (
    "The action changed since it was approved (the agent's config changed); asking again."
)
SLOW_DOWN = "You are sending messages faster than this bot accepts; wait a minute and try again."
UNKNOWN_BUTTON = "That button is not known (any more)."
NO_AGENT_READY = "No agent can take this right now; /agents shows why."
INTERNAL_ERROR = "Something went wrong on my side; it is in the log. Nothing else was affected."
JOB_HOLDS_SECRET = (
    "That job's text holds the value of a stored secret, and a job's text is kept in the "  # noqa: S105
    "database: give the agent the secret in its `env` instead. The job was not created."
)
SHUTTING_DOWN = "agentdeck is shutting down"  # why a run was stopped: "<agent>: stopped: …."


def unknown_command(name: str, known: list[str]) -> str:
    listed = " ".join(f"/{n}" for n in known)
    return f"Unknown command /{name}. Commands: {listed}. /help explains them."


def needs_role(what: str, role: Role) -> str:
    return f"You need the {role} role to {what}."


def too_long(size: int, limit: int) -> str:
    return f"That message is {size:,} characters; the limit is {limit:,}. Send a shorter one."


def args_not_kept(name: str) -> str:
    return (
        f"Your /{name} arrived before a restart, and its arguments are private, so they were "
        f"not kept: nothing was done. Please send it again."
    )


def stranger(user: str) -> str:
    """The refusal of someone not in `[[users]]`: with the id an admin needs to add them."""
    return (
        "Sorry, I only work for the people listed in my config. "
        f"Ask an admin to add you: your id is {user}."
    )


def unsupported(kind: str) -> str:
    """The answer to a message the bot cannot use: what it was, and what the bot takes."""
    return f"I can't use {kind}. Send me text: a question for an agent, or a /command (/help)."


NO_TRANSCRIPTION = (
    "I can't listen to voice notes yet: an admin can set [llm] transcription_model "
    '(e.g. "whisper-1") in the config, then /reload. Meanwhile, please type it.'
)
SPOKEN_PRIVATE_COMMAND = (
    "That command's arguments are private (a secret): type it, don't say it. Nothing was "
    "done, and what you said was not shown."
)
HEARD_NOTHING = "I heard no words in that recording. Please try again, or type it."


def file_too_large(size: int, limit: int) -> str:
    return (
        f"That file is {size / 1_048_576:.1f} MB; I take files up to {limit / 1_048_576:g} MB "
        "([deck] max_file_mb)."
    )


def file_not_fetched(reason: str) -> str:
    return f"I could not fetch that file ({reason}). Please send it again."


def not_transcribed(reason: str) -> str:
    return f"I could not write down that recording: {reason}"
