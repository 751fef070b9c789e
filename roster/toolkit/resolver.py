"""The name lookup behind `http_request`: refuse a name that leads to a forbidden address.

A name is judged by the addresses it resolves to when the connection is made, and
aiohttp connects only to the addresses this resolver returns: a name that resolves
to 127.0.0.1 (DNS rebinding, `localhost`, `127.0.0.1.nip.io`) is refused, however
public it looked in the URL. An IP address in the URL never reaches a resolver;
`HttpRequestTool` checks it before the request.
"""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from roster.addresses import parse_address
from roster.egress import Egress, Verdict
from roster.errors import EgressRefused


class GuardedResolver(AbstractResolver):
    """aiohttp's own resolver, with every address it finds put to the agent's egress."""

    def __init__(self, egress: Egress) -> None:
        self._inner = DefaultResolver()
        self._egress = egress

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        name = host.lower().rstrip(".")
        for entry in found:
            address = parse_address(entry["host"])
            if address is None:  # a resolver answers with addresses; anything else is off
                raise EgressRefused(f"{name} resolves to {entry['host']!r}, not an address")
            ruling = self._egress.address(name, address)
            if ruling.verdict is Verdict.REFUSE:
                raise EgressRefused(ruling.reason)
        return found

    async def close(self) -> None:
        await self._inner.close()
