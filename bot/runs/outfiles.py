"""Files agents send back: a command agent's run gets an empty folder of its own
(`$AGENTDECK_OUTBOX_DIR`, under the data directory), and what the folder holds when the
run ends goes to the run's chat, one message per file, through the outbox (kept under
`run:<id>:file:<n>`, so a file is sent once and retried like any message).

Only regular files are taken: a symlink (to a key file, say) or a folder is named as
skipped, never followed; so is a file above `[deck] max_file_mb`, and anything past
`MAX_FILES`. The folder is deleted with the message's attachments (`bot.intake.files`).
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from bot.delivery.postman import Postman
from bot.text import bold, code, rich
from bot.types import Outgoing

log = logging.getLogger(__name__)

FOLDER = "outbox"
MAX_FILES = 10


@dataclass(frozen=True, slots=True)
class Collected:
    files: list[Path] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "name (why)"


def prepare(root: Path, run_id: str) -> Path:
    """The run's empty folder (0700). Blocking: call in a thread."""
    folder = root / FOLDER / run_id
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    return folder


def collect(folder: Path, limit: int) -> Collected:
    """What the run left in its folder and may be sent. Blocking: call in a thread."""
    found = Collected()
    if not folder.is_dir():
        return found
    for path in sorted(folder.iterdir(), key=lambda p: p.name):
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode):
            found.skipped.append(f"{path.name} (not a regular file)")
        elif info.st_size > limit:
            found.skipped.append(f"{path.name} ({info.st_size:,} bytes, above the limit)")
        elif len(found.files) >= MAX_FILES:
            found.skipped.append(f"{path.name} (more than {MAX_FILES} files)")
        else:
            found.files.append(path)
    return found


async def send(
    postman: Postman, found: Collected, *, run_id: str, agent: str, chat: str, thread: str | None
) -> None:
    """Each file as a message of its own; one line naming what was skipped."""
    for number, path in enumerate(found.files, 1):
        message = Outgoing(
            chat=chat, thread=thread, text=rich(bold(agent), ": ", path.name), files=(str(path),)
        )
        await postman.keep(f"run:{run_id}:file:{number}", message, subject=run_id)
    if found.skipped:
        names = ", ".join(found.skipped)
        note = rich(bold(agent), ": not sent: ", code(names))
        await postman.keep(f"run:{run_id}:file:skipped", Outgoing(chat, note, thread))
