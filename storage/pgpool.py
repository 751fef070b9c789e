"""PostgreSQL's connection pool: connections kept, and checked without a round trip.

A connection opened for a moment of many at once and closed when it comes back (a pool's
"overflow") costs a server process started and a login each time, and the statements
it had prepared: in a burst of 50 chats that was seven connections per ten messages.
Here every connection the pool opens stays open, up to the same 30 as before, and a
checkout beyond them waits for one to come back (briefly: sessions are short).

SQLAlchemy's `pool_pre_ping` asks the server at every checkout, and on asyncpg that
is three round trips (`BEGIN`, `;`, `ROLLBACK`): a fifth of a busy bot's time on the
loop went there, for every session and read. A server that restarts or stops closes
its connections, and asyncpg sees that at once (`is_closed`); such a connection is
replaced before it is handed out, as the ping would have. Only a connection idle for
long is still pinged: a firewall or a network fault may have dropped it silently. A
connection that breaks between two uses anyway makes its statement fail as a
disconnect, which invalidates the whole pool and is retried like any outage
(`storage.faults`).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

POOL_SIZE = 30  # connections per process, all kept once opened (the server's default
# max_connections is 100: two processes and a dashboard stay well within it)
IDLE_PING_SECONDS = 10.0  # idle longer than this: asked, not trusted
_RETURNED = "agentdeck_returned_at"


def postgres_engine(url: str) -> AsyncEngine:
    engine = create_async_engine(url, pool_size=POOL_SIZE, max_overflow=0)
    check_on_checkout(engine)  # what `pool_pre_ping` did, without its round trips
    return engine


def check_on_checkout(engine: AsyncEngine) -> None:
    """Replace a closed pooled connection at checkout; ping one that was idle long."""
    pool = engine.sync_engine.pool
    event.listen(pool, "checkout", _checkout)
    event.listen(pool, "checkin", _checkin)


def _checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    if dbapi_connection._connection.is_closed():  # the server closed it (asyncpg saw EOF)
        raise DisconnectionError("the server closed this connection")
    returned = record.info.get(_RETURNED)
    if returned is None or time.monotonic() - returned < IDLE_PING_SECONDS:
        return  # just made, or in use a moment ago
    try:
        dbapi_connection.ping()
    except Exception as exc:  # any failure: a new connection instead (SQLAlchemy retries)
        raise DisconnectionError(str(exc)) from exc


def _checkin(_dbapi_connection: Any, record: Any) -> None:
    record.info[_RETURNED] = time.monotonic()
