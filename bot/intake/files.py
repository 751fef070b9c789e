"""Photos and files in: fetched through the platform, saved for the agents, handed on.

Each message's files go to a folder of their own under the data directory
(`attachments/<date>-<random>/`, mode 0700) with names reduced to safe characters (a
name like `../../etc/passwd` is saved as `passwd` inside that folder). Only someone
who may talk to agents has files fetched at all. The message's caption is its text;
which agent gets the files, and how (`roster.attachments`), follows from routing as
for typed text; a document a model can read as text is read once, here.
Folders older than `[deck] attachments_days` are deleted (`prune`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import shutil
import uuid
from datetime import datetime, timedelta
from pathlib import Path

from bot import messages
from bot.config import CurrentConfig, Role
from bot.delivery.postman import Postman
from bot.errors import FileTooLarge, TransportError
from bot.intake.actions import Actions
from bot.types import Attachment, AttachmentKind, Downloads, Incoming
from roster import documents
from roster.agent import Received
from storage.audit import AuditLog
from storage.clock import Clock

log = logging.getLogger(__name__)

FOLDER = "attachments"
OUTBOX = "outbox"  # `bot.runs.outfiles.FOLDER`: files runs send back
KEPT = frozenset({AttachmentKind.PHOTO, AttachmentKind.DOCUMENT})
MAX_NAME = 100
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_DAY = re.compile(r"^(\d{8})-")


def sent(incoming: Incoming) -> tuple[Attachment, ...]:
    return tuple(a for a in incoming.attachments if a.kind in KEPT)


def safe_name(name: str, fallback: str) -> str:
    """A file name that stays inside its folder: no directories, no leading dots."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = _UNSAFE.sub("_", base).strip("._")[:MAX_NAME]
    return base or fallback


def _write(folder: Path, name: str, data: bytes) -> Path:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = folder / name
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    return path


class Files:
    """Files in: fetched through the platform, checked, saved (`received`)."""

    def __init__(
        self,
        *,
        config: CurrentConfig,
        clock: Clock,
        audit: AuditLog,
        postman: Postman,
        actions: Actions,
    ) -> None:
        self._config = config
        self._clock = clock
        self._audit = audit
        self._postman = postman
        self._actions = actions

    async def received(self, incoming: Incoming, role: Role) -> tuple[Received, ...] | None:
        """The message's files, fetched and saved; None when the sender was told why not."""
        if not role.allows(Role.OPERATOR):
            await self._actions.refuse_role(incoming, "send files to agents", Role.OPERATOR)
            return None
        now = self._clock.now()
        folder = self._config().deck.data_path() / FOLDER / f"{now:%Y%m%d}-{uuid.uuid4().hex[:16]}"
        saved: list[Received] = []
        for number, attachment in enumerate(sent(incoming), 1):
            data = await self.fetch(incoming, attachment)
            if data is None:
                return None
            name = safe_name(attachment.name, f"file{number}")
            if any(f.name == name for f in saved):
                name = f"{number}-{name}"
            path = await asyncio.to_thread(_write, folder, name, data)
            text = None
            if attachment.kind is AttachmentKind.DOCUMENT:  # a PDF is parsed: in a thread
                text = await asyncio.to_thread(documents.as_text, name, attachment.mime, data)
            kind = attachment.kind.value
            saved.append(Received(str(path), kind, name, attachment.mime, len(data), text))
        self._audit.record(
            incoming.user, "files.received", incoming.chat, names=[f.name for f in saved]
        )
        return tuple(saved)

    async def fetch(self, incoming: Incoming, attachment: Attachment) -> bytes | None:
        """The file's bytes through its transport, within `[deck] max_file_mb`; None when the
        sender was told why not."""
        limit = self._config().deck.max_file_bytes
        if attachment.size is not None and attachment.size > limit:
            await self.refuse(
                incoming, "too_large", messages.file_too_large(attachment.size, limit)
            )
            return None
        transport = self._postman.transport_for(incoming.chat)
        if not isinstance(transport, Downloads):
            unable = messages.file_not_fetched("this chat platform does not pass files on")
            await self.refuse(incoming, "no_download", unable)
            return None
        try:
            return await transport.download(incoming, attachment, limit)
        except FileTooLarge as exc:
            await self.refuse(incoming, "too_large", messages.file_too_large(exc.size, limit))
        except TransportError as exc:
            log.warning("could not download a file in %s: %s", incoming.chat, exc)
            await self.refuse(incoming, "download", messages.file_not_fetched(str(exc)))
        return None

    async def refuse(self, incoming: Incoming, why: str, text: str) -> None:
        self._audit.record(incoming.user, "refused.file", incoming.chat, reason=why)
        await self._actions.reply(incoming, text)


def prune(root: Path, now: datetime, days: float) -> int:
    """Delete the folders of messages older than `days`, and the runs' outbox folders
    (`bot.runs.outfiles`) last changed before then; how many. Blocking: a thread."""
    cutoff = now - timedelta(days=days)
    removed = 0
    for folder in _folders(root / FOLDER):
        day = _DAY.match(folder.name)
        if day and day[1] < f"{cutoff:%Y%m%d}":
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    for folder in _folders(root / OUTBOX):
        if folder.stat().st_mtime < cutoff.timestamp():
            shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    return removed


def _folders(base: Path) -> list[Path]:
    if not base.is_dir():
        return []
    return [f for f in base.iterdir() if f.is_dir() and not f.is_symlink()]
