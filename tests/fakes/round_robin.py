"""A round-robin TCP balancer on 127.0.0.1: each new connection goes to the next backend.

What a load balancer in front of several bot processes does, at the connection level:
a client that wants each request to reach the next process opens a connection per
request (Telegram and Slack do not promise to reuse one). `picks` records where each
connection went, so a test can tell which process got what.

Benchmarks run it alone, so its copying does not share a loop with the load:
`python -m tests.fakes.round_robin --port 8300 --backends 8301,8302`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
from typing import Self


class RoundRobin:
    def __init__(self, backend_ports: list[int]) -> None:
        self.backends = list(backend_ports)
        self._next = itertools.cycle(backend_ports)
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self.picks: list[int] = []  # the backend port of each connection, in order
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self, port: int = 0) -> Self:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        backend = next(self._next)
        self.picks.append(backend)
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", backend)
        except OSError:
            writer.transport.abort()  # a dead backend: the client sees a reset, and retries
            return
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            pipe = asyncio.create_task(self._pipe(source, sink), name=f"balancer:{backend}")
            self._pipes.add(pipe)
            pipe.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        with contextlib.suppress(OSError):
            writer.close()  # one side is done: so is the other direction


async def _serve(port: int, backends: list[int]) -> None:
    balancer = await RoundRobin(backends).start(port)
    print(f"round robin on {balancer.url} to {backends}", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backends", required=True, help="ports, comma-separated")
    options = parser.parse_args()
    asyncio.run(_serve(options.port, [int(p) for p in options.backends.split(",")]))
