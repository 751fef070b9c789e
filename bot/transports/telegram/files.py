"""Files people send, fetched through the Bot API: `getFile`, then the file's download URL.

The Bot API gives bots files up to 20 MB; the deck's own limit (`[deck] max_file_mb`) is
checked on the size Telegram announces, then on what arrived.
"""

from __future__ import annotations

from telegram import Bot
from telegram.error import BadRequest

from bot.errors import FileTooLarge
from bot.transports.telegram.limits import retrying
from bot.types import Attachment

BOT_API_FILE_LIMIT = 20 * 1024 * 1024


async def download(bot: Bot, attachment: Attachment, limit: int) -> bytes:
    """The attachment's bytes; `FileTooLarge` above `limit` (or the Bot API's own)."""
    try:
        file = await retrying(lambda: bot.get_file(attachment.file_id), what="getFile")
    except BadRequest as exc:
        if "too big" in exc.message.lower():
            raise FileTooLarge(attachment.size or BOT_API_FILE_LIMIT + 1, limit) from None
        raise
    if file.file_size is not None and file.file_size > limit:
        raise FileTooLarge(file.file_size, limit)
    data = await file.download_as_bytearray()
    if len(data) > limit:
        raise FileTooLarge(len(data), limit)
    return bytes(data)
