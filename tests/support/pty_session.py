"""A program on a pseudo-terminal, as a person at a terminal runs it (stdlib `pty`).

`expect` waits, with a deadline, until the screen output so far holds a text; `send`
types bytes (arrow keys as their escape sequences).
"""

from __future__ import annotations

import asyncio
import os
import pty
import select
import signal
import subprocess
from collections.abc import Mapping, Sequence

WAIT_SECONDS = 20.0
UP, LEFT = b"\x1b[A", b"\x1b[D"


class PtySession:
    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str]) -> None:
        self._master, slave = pty.openpty()
        self.process = subprocess.Popen(
            list(argv),
            stdin=slave,
            stdout=slave,
            stderr=slave,
            env=dict(env),
            start_new_session=True,
        )
        os.close(slave)
        self.output = b""

    def _read(self) -> None:
        while select.select([self._master], [], [], 0)[0]:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # the program ended and closed the terminal
                return
            if not chunk:
                return
            self.output += chunk

    async def expect(self, needle: bytes, *, count: int = 1) -> None:
        async with asyncio.timeout(WAIT_SECONDS):
            while self.output.count(needle) < count:
                await asyncio.sleep(0.05)
                await asyncio.to_thread(self._read)

    def send(self, data: bytes) -> None:
        os.write(self._master, data)

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    async def wait(self) -> int:
        async with asyncio.timeout(WAIT_SECONDS):
            while self.process.poll() is None:
                await asyncio.to_thread(self._read)
                await asyncio.sleep(0.05)
        self._read()
        return self.process.returncode

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        os.close(self._master)
