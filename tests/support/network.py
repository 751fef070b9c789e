"""Addresses for tests: a free port, the loopback guard, the shared PostgreSQL server."""

from __future__ import annotations

import ipaddress
import os
import socket
from typing import Any

PG_URL = os.environ.get("AGENTDECK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")

_real_connect = socket.socket.connect


def loopback_only(self: socket.socket, address: Any) -> Any:
    """`socket.connect` that refuses any address but this machine's (the tests' guard)."""
    if self.family in (socket.AF_INET, socket.AF_INET6):
        host = address[0]
        if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
            raise ConnectionRefusedError(f"tests may not reach {host}: only 127.0.0.1 / ::1")
    return _real_connect(self, address)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def postgres_available() -> bool:
    """Whether the shared PostgreSQL server answers at 127.0.0.1:5432."""
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            return True
    except OSError:
        return False


async def admin_sql(statement: str) -> None:
    """Run one statement on the shared server (create or drop a test's database)."""
    import asyncpg

    conn = await asyncpg.connect(PG_URL.replace("postgresql://", "postgres://"))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()
