"""Files people share in Slack, fetched for the deck: `files.info`, then `url_private`.

The bot token goes with the download, so it is sent only to Slack's file host (or the
host of the configured Web API, a test's fake), never to whatever URL a file object
names, and no redirect is followed. A file is fetched only when Slack says it was shared
in the chat the message came from: a file id from elsewhere is refused. The size is
checked as Slack announces it and again while the bytes arrive.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import aiohttp

from bot.errors import FileTooLarge, TransportError
from bot.transports.slack.web import SlackRefused, SlackWeb, translated
from bot.types import Attachment

FILE_HOSTS = frozenset({"files.slack.com"})
CHUNK = 64 * 1024
DOWNLOAD_SECONDS = 60
HTTP_OK = 200


async def download(web: SlackWeb, attachment: Attachment, channel: str, limit: int) -> bytes:
    with translated("files.info"):
        answer = await web.client.files_info(file=attachment.file_id)
    info: dict[str, Any] = answer.get("file") or {}
    shared = {*info.get("channels", ()), *info.get("groups", ()), *info.get("ims", ())}
    if channel not in shared:
        raise SlackRefused("files.info", "file_not_shared_in_this_chat")
    size = int(info.get("size") or 0)
    if size > limit:
        raise FileTooLarge(size, limit)
    url = str(info.get("url_private_download") or info.get("url_private") or "")
    if urlsplit(url).scheme not in ("https", "http") or not _ours(url, web):
        raise SlackRefused("files.info", "file_url_not_on_slack")
    return await _fetch(web, url, limit)


def _ours(url: str, web: SlackWeb) -> bool:
    host = urlsplit(url).hostname or ""
    return host in FILE_HOSTS or host == urlsplit(str(web.client.base_url)).hostname


async def _fetch(web: SlackWeb, url: str, limit: int) -> bytes:
    headers = {"Authorization": f"Bearer {web.client.token}"}
    timeout = aiohttp.ClientTimeout(total=DOWNLOAD_SECONDS)
    received = bytearray()
    session = web.client.session
    if session is None:
        raise TransportError("the Slack client has no HTTP session")
    with translated("file download"):
        async with session.get(
            url, headers=headers, timeout=timeout, allow_redirects=False
        ) as response:
            if response.status != HTTP_OK:
                raise SlackRefused("file download", f"HTTP {response.status}")
            async for chunk in response.content.iter_chunked(CHUNK):
                received += chunk
                if len(received) > limit:
                    raise FileTooLarge(len(received), limit)
    return bytes(received)
