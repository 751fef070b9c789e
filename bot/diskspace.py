"""A full disk is said out loud: once when writes start waiting for space, once when they
go through again.

The database's writers wait for space as long as it takes and lose nothing
(`storage.faults`), but a bot that silently stops answering looks dead. The notice goes
to the admin chat, and always to the log (stderr): with no admin chat, or in the
console, that is where it is read.

The "full" notice is sent straight to the transport, not through the outbox: the
outbox is rows in the same database, whose writes are the ones waiting for space. It
is tried once and not kept (best effort); the log line stays. The "space again"
notice goes through the outbox like any message (kept until delivered).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from bot.deck import Deck
from bot.types import Outgoing

log = logging.getLogger(__name__)


def full_text(where: str, detail: str) -> str:
    return (
        f"The database ({where}) is out of space: {detail}. Messages wait and none is lost, "
        "but nothing is answered until there is room. Free some disk space; the bot goes "
        "on by itself."
    )


def back_text(where: str) -> str:
    return f"The database ({where}) has space again: waiting messages are being answered."


@contextmanager
def telling_when_full(deck: Deck) -> Iterator[None]:
    """While inside: each change of the database's "out of space" state is told once."""

    def changed(full: bool, detail: str) -> None:
        deck.tasks.spawn(_tell(deck, full, detail), name="disk-space")

    stop: Callable[[], None] = deck.db.pressure.listen(changed)
    try:
        yield
    finally:
        stop()


async def _tell(deck: Deck, full: bool, detail: str) -> None:
    where = deck.db.display_url
    text = full_text(where, detail) if full else back_text(where)
    if full:
        log.error(text)
    else:
        log.warning(text)
    admin = deck.config.deck.admin_chat
    if not admin or not deck.postman.knows(admin):
        return
    message = Outgoing.plain(admin, text)
    try:
        if full:
            await deck.postman.deliver(message)  # not recorded: recording needs the space
        else:
            await deck.postman.send(message)
    except Exception as exc:  # the log line above stands; the admin chat may be down too
        log.warning("could not tell the admin chat about the disk space: %s", exc)
