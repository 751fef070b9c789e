"""What a Claude Code or Codex run is told about files, and which folders its CLI may use.

A message's files are saved under the data directory (`bot.intake.files`) and the run's
folder for files to send back too (`bot.runs.outfiles`): both are outside the agent's
`cwd`, so the CLI is given them as extra directories (Claude Code `--add-dir`, Codex
`--add-dir`), and only those: the folder of this message's files, never the folder of
all attachments (other chats' files). The folder for files back is named to the agent by
`$AGENTDECK_OUTBOX_DIR` (as command agents get it) and by a line of its instructions.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from roster.agent import AgentRequest

OUTBOX_VARIABLE = "AGENTDECK_OUTBOX_DIR"


def outbox_note(outbox: str | None) -> str:
    """The line that tells the agent where to put files for the chat ('' without a folder)."""
    if outbox is None:
        return ""
    return (
        f"To send files to the user, write them into the folder ${OUTBOX_VARIABLE} "
        f"({outbox}): each file there is sent to the chat when your turn ends."
    )


def extra_dirs(request: AgentRequest) -> Iterator[str]:
    """The folders of this message's files and the run's outbox, each once, in order."""
    seen: set[str] = set()
    folders = [str(Path(file.path).parent) for file in request.files]
    if request.outbox is not None:
        folders.append(request.outbox)
    for folder in folders:
        if folder not in seen:
            seen.add(folder)
            yield folder
