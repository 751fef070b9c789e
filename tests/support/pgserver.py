"""A throwaway PostgreSQL server that a test may stop and restart (never the shared one).

`initdb` + `pg_ctl` from `/usr/lib/postgresql/*/bin` into a temporary directory owned by
the `postgres` user (initdb refuses root), listening on 127.0.0.1 on a free port, trust
auth. `restart("fast")` is what `pg_ctlcluster … restart` does; `"immediate"` is a crash.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

BINARIES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
OWNER = "postgres"


def missing() -> str | None:
    """Why a throwaway server cannot start here, or None when it can."""
    if not BINARIES or not (BINARIES[0] / "pg_ctl").exists():
        return "no PostgreSQL server binaries under /usr/lib/postgresql/*/bin"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "running as root without runuser (initdb refuses root)"
    try:
        import pwd

        pwd.getpwnam(OWNER)
    except KeyError:
        return f"no {OWNER!r} user to run the server as"
    return None


class PgServer:
    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.data = directory / "data"
        self.log = directory / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        command = [str(BINARIES[0] / args[0]), *args[1:]]
        if os.geteuid() == 0:
            command = ["runuser", "-u", OWNER, "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        settings = (
            f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{self.directory}'\n"
            "fsync = off\nmax_connections = 200\nshared_buffers = 32MB\n"
        )
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(settings)

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def begin_smart_stop(self) -> None:
        """Ask for a stop that waits for open sessions, and return at once: until they
        close, new connections are refused as "shutting down" (SQLSTATE 57P03)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "smart", "-W", "stop")

    def restart(self, mode: str = "fast") -> None:
        """Stop (`fast`: backends told to end; `immediate`: killed, crash recovery) and start."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-m", mode, "-w", "restart")

    async def restart_async(self, mode: str = "fast") -> None:
        await asyncio.to_thread(self.restart, mode)

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()


@contextmanager
def pg_server(port: int) -> Iterator[PgServer]:
    """A fresh server, started; stopped and removed after."""
    directory = Path(tempfile.mkdtemp(prefix="agentdeck-pg-"))
    shutil.chown(directory, OWNER, OWNER)
    server = PgServer(directory, port)
    try:
        server.init()
        server.start()
        yield server
    finally:
        if server.running():
            with suppress(subprocess.CalledProcessError):
                server.stop("immediate")
        shutil.rmtree(directory, ignore_errors=True)
