"""Read the bot's Prometheus endpoint the way a scraper does."""

from __future__ import annotations

import aiohttp


async def scrape(url: str) -> tuple[str, dict[str, float]]:
    """The content type and every sample line as `name{labels}` -> value."""
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        assert response.status == 200
        body = await response.text()
        kind = response.headers["Content-Type"]
    samples = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return kind, samples
