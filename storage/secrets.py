"""The secrets vault: Fernet ciphertext in the `secrets` table, values only in memory.

The master key comes from `AGENTDECK_MASTER_KEY` (one key, or several separated by
commas: the first encrypts, all decrypt) or else from `master.key` in the data
directory, created with mode 0600 the first time a secret is stored. Values are
decrypted once at start and kept in memory, because they are read on hot paths
(a command's environment, the scrubbing of every outgoing message); `set`, `delete`
and `rotate` refresh that copy, and tell the deck's one scrubber (`storage.scrubber`),
which also knows the master key itself and the credentials the bot read from `env:`.

Fernet cannot tell a wrong key from a damaged row; the vault can: when no stored row
decrypts, the key is wrong; when only some do, those rows are damaged. Either way
the error says what to do; a value is never silently empty.

The only module that imports `cryptography`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from sqlmodel import col, delete, select

from storage.clock import Clock
from storage.db import Database
from storage.errors import MasterKeyError, SecretNotFound, SecretRejected, SecretUnreadable
from storage.models import Secret
from storage.private import private_dir
from storage.scrubber import MIN_VALUE_CHARS, Scrubber, scrubbable

if TYPE_CHECKING:
    from cryptography.fernet import MultiFernet

log = logging.getLogger(__name__)

ENV_KEY = "AGENTDECK_MASTER_KEY"
KEY_FILE = "master.key"
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,99}$")


class KeySource(StrEnum):
    ENVIRONMENT = "environment"
    FILE = "file"


@dataclass(frozen=True, slots=True)
class MasterKeys:
    """The keys in use: the first encrypts, every one decrypts."""

    keys: tuple[bytes, ...]
    source: KeySource
    path: Path | None = None

    @property
    def where(self) -> str:
        return ENV_KEY if self.source is KeySource.ENVIRONMENT else str(self.path)

    def labelled(self) -> dict[str, str]:
        """The keys as the scrubber knows them: `env:AGENTDECK_MASTER_KEY`, `file:master.key`."""
        label = f"env:{ENV_KEY}" if self.source is KeySource.ENVIRONMENT else f"file:{KEY_FILE}"
        return {
            label if i == 0 else f"{label}#{i + 1}": key.decode() for i, key in enumerate(self.keys)
        }

    def fernet(self) -> MultiFernet:
        # Imported on first use: a deck without secrets never loads `cryptography` (8 MB).
        from cryptography.fernet import Fernet, MultiFernet

        return MultiFernet([Fernet(key) for key in self.keys])


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """What may be shown about a secret: never its value."""

    name: str
    set_by: str
    set_at: datetime


def new_key() -> str:
    from cryptography.fernet import Fernet

    return Fernet.generate_key().decode()


def read_keys(data_dir: Path, *, create: bool) -> MasterKeys | None:
    """The master keys from the environment or the key file; None when there are none.

    With `create`, a missing key file is created (mode 0600) with a fresh key.
    Blocking file I/O: call it in a thread from async code.
    """
    raw = os.environ.get(ENV_KEY, "").strip()
    if raw:
        return _checked(MasterKeys(_split(raw.encode()), KeySource.ENVIRONMENT))
    path = data_dir / KEY_FILE
    if not path.exists():
        if not create:
            return None
        _create_key_file(path)
    _warn_if_readable(path)
    return _checked(MasterKeys(_split(path.read_bytes()), KeySource.FILE, path))


def _split(raw: bytes) -> tuple[bytes, ...]:
    return tuple(part.strip() for part in re.split(rb"[,\n]", raw) if part.strip())


def _checked(keys: MasterKeys) -> MasterKeys:
    if not keys.keys:
        raise MasterKeyError(f"{keys.where} holds no key. Restore it, or remove it if empty.")
    try:
        keys.fernet()
    except ValueError:
        raise MasterKeyError(
            f"{keys.where} does not hold a valid key (44 characters of URL-safe base64, "
            "as `agentdeck secrets new-key` prints)."
        ) from None
    return keys


def _create_key_file(path: Path) -> None:
    private_dir(path.parent)
    try:
        # O_EXCL: two processes starting at once must not each write their own key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "wb") as out:
        out.write(new_key().encode() + b"\n")
        out.flush()
        os.fsync(out.fileno())
    log.info("created the master key file %s; back it up: without it no secret can be read", path)


def _write_key_file(path: Path, keys: Sequence[bytes]) -> None:
    """Replace the key file atomically, so a crash leaves the old or the new one."""
    staging = path.with_name(path.name + ".new")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        os.fchmod(out.fileno(), 0o600)  # a leftover staging file may have had a wider mode
        out.write(b"\n".join(keys) + b"\n")
        out.flush()
        os.fsync(out.fileno())
    os.replace(staging, path)


def _warn_if_readable(path: Path) -> None:
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning(
            "the master key file %s can be read by other users (mode %03o); fix: chmod 600 %s",
            path,
            mode,
            path,
        )


def _decrypt_all(keys: MasterKeys, rows: Sequence[Secret]) -> dict[str, str]:
    from cryptography.fernet import InvalidToken

    fernet = keys.fernet()
    values: dict[str, str] = {}
    failed: list[str] = []
    for row in rows:
        try:
            values[row.name] = fernet.decrypt(row.ciphertext).decode()
        except (InvalidToken, UnicodeDecodeError):
            failed.append(row.name)
    if failed and not values:
        raise MasterKeyError(_wrong_key(keys, len(failed)))
    if failed:
        raise SecretUnreadable(failed)
    return values


def _wrong_key(keys: MasterKeys, count: int) -> str:
    return (
        f"The master key from {keys.where} does not decrypt the {count} stored secret(s): it is "
        f"not the key they were stored with. Restore that key (in {ENV_KEY} or "
        f"{KEY_FILE} in the data directory), or delete the secrets and set them again."
    )


def check_name(name: str) -> None:
    if not NAME.match(name):
        raise SecretRejected(
            f"{name!r} is not a usable secret name: a letter, then letters, digits, _ . - "
            "(up to 100)."
        )


def check_value(value: str) -> None:
    if not value:
        raise SecretRejected("The value is empty; nothing was stored.")
    if not scrubbable(value):
        raise SecretRejected(
            f"The value is shorter than {MIN_VALUE_CHARS} characters (blanks aside); it could "
            "not be told apart from ordinary text when scrubbing output, so it was not stored."
        )


class Vault:
    """Stored secrets by name: `get` for references, `redact` to scrub text of values."""

    def __init__(
        self, *, db: Database, data_dir: Path, clock: Clock, scrubber: Scrubber | None = None
    ) -> None:
        self._db = db
        self._data_dir = data_dir
        self._clock = clock
        self._keys: MasterKeys | None = None
        self._retired: dict[str, str] = {}  # keys rotated away: still scrubbed here
        self._values: dict[str, str] = {}
        self.scrubber = scrubber or Scrubber()
        self._lock = asyncio.Lock()

    async def load(self) -> Vault:
        """Decrypt every stored secret into memory; fail clearly if that is impossible."""
        rows = await self._rows()
        keys = await asyncio.to_thread(read_keys, self._data_dir, create=False)
        if rows and keys is None:
            raise MasterKeyError(
                f"{len(rows)} secret(s) are stored but there is no master key: set {ENV_KEY} "
                f"or restore {self._data_dir / KEY_FILE}."
            )
        values = await asyncio.to_thread(_decrypt_all, keys, rows) if keys and rows else {}
        self._use_keys(keys)
        self._use(values)
        return self

    def get(self, name: str) -> str | None:
        return self._values.get(name)

    def names(self) -> list[str]:
        return sorted(self._values)

    def redact(self, text: str) -> str:
        """Replace every known secret's value in `text` by `[redacted:NAME]`."""
        return self.scrubber.redact(text)

    @property
    def key_source(self) -> str:
        return self._keys.where if self._keys else "none yet"

    async def set(self, name: str, value: str, *, by: str) -> None:
        """Encrypt and store a value (replacing one of the same name)."""
        check_name(name)
        check_value(value)
        async with self._lock:
            await self.load()  # the key must read what is stored before it adds to it
            keys = self._keys or await asyncio.to_thread(read_keys, self._data_dir, create=True)
            assert keys is not None
            self._use_keys(keys)
            row = Secret(
                name=name,
                ciphertext=keys.fernet().encrypt(value.encode()),
                set_by=by,
                set_at=self._clock.now(),
            )
            async with self._db.session() as session:
                await session.merge(row)
                await session.commit()
            self._use({**self._values, name: value})

    async def delete(self, name: str) -> None:
        """Remove a secret; needs no key, so a damaged row can always be removed."""
        async with self._lock, self._db.session() as session:
            result = await session.exec(delete(Secret).where(col(Secret.name) == name))
            await session.commit()
            if not result.rowcount:
                raise SecretNotFound(name)
            self._use({k: v for k, v in self._values.items() if k != name})

    async def listing(self) -> list[SecretInfo]:
        """Names, who set them and when; needs no key."""
        return [SecretInfo(r.name, r.set_by, r.set_at) for r in await self._rows()]

    async def rotate(self) -> MasterKeys:
        """Re-encrypt every secret under a new key; the old key stays usable until done."""
        async with self._lock:
            await self.load()
            keys = self._keys or await asyncio.to_thread(read_keys, self._data_dir, create=True)
            assert keys is not None
            if keys.source is KeySource.ENVIRONMENT:
                await self._reencrypt(_env_rotation(keys))
                return keys
            assert keys.path is not None
            staged = MasterKeys((new_key().encode(), *keys.keys), KeySource.FILE, keys.path)
            self._use_keys(staged)  # the new key is known before it is written anywhere
            await asyncio.to_thread(_write_key_file, keys.path, staged.keys)
            await self._reencrypt(staged)
            done = MasterKeys(staged.keys[:1], KeySource.FILE, keys.path)
            await asyncio.to_thread(_write_key_file, keys.path, done.keys)
            self._use_keys(done)
            return done

    async def _reencrypt(self, keys: MasterKeys) -> None:
        """One transaction: either every row moves to the new key or none does."""
        fernet = keys.fernet()
        async with self._db.session() as session:
            for row in (await session.exec(select(Secret))).all():
                row.ciphertext = fernet.rotate(row.ciphertext)
                session.add(row)
            await session.commit()

    async def _rows(self) -> list[Secret]:
        async with self._db.session() as session:
            return list((await session.exec(select(Secret).order_by(col(Secret.name)))).all())

    def _use(self, values: dict[str, str]) -> None:
        self._values = values
        self.scrubber.use("vault", values)

    def _use_keys(self, keys: MasterKeys | None) -> None:
        """Use these keys; one that is no longer among them stays a value to scrub: a key
        rotated away still opens every copy of the database made before the rotation."""
        kept = {key.decode() for key in keys.keys} if keys else set()
        for label, value in (self._keys.labelled() if self._keys else {}).items():
            if value not in kept:
                self._retired[f"{label} (retired)"] = value
        self._keys = keys
        self.scrubber.use("master key", keys.labelled() if keys else {})
        self.scrubber.use("retired master keys", self._retired)


def _env_rotation(keys: MasterKeys) -> MasterKeys:
    if len(keys.keys) < 2:
        raise MasterKeyError(
            f"The master key comes from {ENV_KEY}, which this command cannot change. Put a new "
            f"key first, then run rotate-key again: {ENV_KEY}=<new key>,<current key>. "
            "`agentdeck secrets new-key` prints a new key."
        )
    return keys
