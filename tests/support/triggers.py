"""Webhook deliveries for the trigger tests: signed like GitHub's, posted to a listener."""

from __future__ import annotations

import json
from typing import Any

import aiohttp

from bot.triggers.verify import signature

HOOK_SECRET = "gh-hook-secret-0123456789"


async def post(
    port: int,
    path: str,
    body: bytes,
    headers: dict[str, str],
) -> tuple[int, dict[str, Any]]:
    url = f"http://127.0.0.1:{port}{path}"
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as r,
    ):
        text = await r.text()
        try:
            return r.status, json.loads(text)
        except ValueError:
            return r.status, {"text": text}


def github(body: bytes, delivery: str = "d-1", secret: str = HOOK_SECRET) -> dict[str, str]:
    return {
        "X-Hub-Signature-256": signature(secret, body),
        "X-GitHub-Delivery": delivery,
        "Content-Type": "application/json",
    }
