"""The secrets vault on a real SQLite file: encryption, keys, rotation, clear errors."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlmodel import select

from storage.clock import FakeClock
from storage.db import Database, sqlite_url
from storage.errors import MasterKeyError, SecretNotFound, SecretRejected, SecretUnreadable
from storage.models import Secret
from storage.secrets import ENV_KEY, KEY_FILE, Vault, new_key

VALUE = "tok-3f9a1c77e2b54d"


@asynccontextmanager
async def opened(data_dir: Path, *, load: bool = True) -> AsyncIterator[Vault]:
    async with Database(sqlite_url(data_dir)) as db:
        vault = Vault(db=db, data_dir=data_dir, clock=FakeClock())
        yield await vault.load() if load else vault


async def stored_rows(data_dir: Path) -> list[Secret]:
    async with Database(sqlite_url(data_dir)) as db, db.session() as session:
        return list((await session.exec(select(Secret))).all())


async def test_set_get_list_delete_and_only_ciphertext_is_stored(data_dir: Path) -> None:
    async with opened(data_dir) as vault:
        await vault.set("TOKEN", VALUE, by="test:admin")
        assert vault.get("TOKEN") == VALUE
        [info] = await vault.listing()
        assert (info.name, info.set_by) == ("TOKEN", "test:admin")
    async with opened(data_dir) as again:  # a new process reads it back with the key file
        assert again.get("TOKEN") == VALUE
        await again.delete("TOKEN")
        assert again.get("TOKEN") is None
        with pytest.raises(SecretNotFound, match="No secret named 'TOKEN'"):
            await again.delete("TOKEN")
    for path in data_dir.glob("agentdeck.db*"):
        assert VALUE.encode() not in path.read_bytes()


async def test_key_file_is_created_private(data_dir: Path) -> None:
    async with opened(data_dir) as vault:
        assert not (data_dir / KEY_FILE).exists()  # created when first needed
        await vault.set("TOKEN", VALUE, by="x")
    assert (data_dir / KEY_FILE).stat().st_mode & 0o777 == 0o600


async def test_a_readable_key_file_is_warned_about_with_the_fix(
    data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with opened(data_dir) as vault:
        await vault.set("TOKEN", VALUE, by="x")
    key_file = data_dir / KEY_FILE
    key_file.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="storage.secrets"):
        async with opened(data_dir) as vault:
            assert vault.get("TOKEN") == VALUE
    assert f"fix: chmod 600 {key_file}" in caplog.text
    assert "mode 644" in caplog.text


async def test_wrong_key_is_one_clear_error(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with opened(data_dir) as vault:
        await vault.set("TOKEN", VALUE, by="x")
        await vault.set("OTHER", "other-value", by="x")
    monkeypatch.setenv(ENV_KEY, new_key())
    with pytest.raises(MasterKeyError) as caught:
        async with opened(data_dir):
            pass
    message = str(caught.value)
    assert "does not decrypt the 2 stored secret(s)" in message
    assert ENV_KEY in message
    assert VALUE not in message


async def test_missing_key_with_stored_secrets_is_an_error_not_a_new_key(data_dir: Path) -> None:
    async with opened(data_dir) as vault:
        await vault.set("TOKEN", VALUE, by="x")
    (data_dir / KEY_FILE).unlink()
    with pytest.raises(
        MasterKeyError, match=r"1 secret\(s\) are stored but there is no master key"
    ):
        async with opened(data_dir):
            pass
    assert not (data_dir / KEY_FILE).exists()


async def test_malformed_env_key_is_named(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async with opened(data_dir) as vault:
        await vault.set("TOKEN", VALUE, by="x")
    monkeypatch.setenv(ENV_KEY, "not-a-key")
    with pytest.raises(MasterKeyError, match=f"{ENV_KEY} does not hold a valid key"):
        async with opened(data_dir):
            pass


async def test_a_damaged_row_is_named_with_what_to_do(data_dir: Path) -> None:
    async with opened(data_dir) as vault:
        await vault.set("GOOD", VALUE, by="x")
        await vault.set("BAD", "bad-value-1234", by="x")
    async with Database(sqlite_url(data_dir)) as db, db.session() as session:
        row = await session.get(Secret, "BAD")
        assert row is not None
        row.ciphertext = row.ciphertext[:-8] + b"AAAAAAAA"
        session.add(row)
        await session.commit()
    with pytest.raises(SecretUnreadable, match="agentdeck secrets delete BAD") as caught:
        async with opened(data_dir):
            pass
    assert caught.value.names == ["BAD"]
    async with opened(data_dir, load=False) as vault:  # deleting needs no key
        await vault.delete("BAD")
    async with opened(data_dir) as vault:
        assert vault.get("GOOD") == VALUE


async def test_rotation_reencrypts_everything_and_drops_the_old_key(data_dir: Path) -> None:
    async with opened(data_dir) as vault:
        await vault.set("TOKEN", VALUE, by="x")
        await vault.set("OTHER", "other-value", by="x")
    old_key = (data_dir / KEY_FILE).read_bytes()
    before = {row.name: row.ciphertext for row in await stored_rows(data_dir)}
    async with opened(data_dir) as vault:
        keys = await vault.rotate()
        assert vault.get("TOKEN") == VALUE
    assert len(keys.keys) == 1
    new_key_bytes = (data_dir / KEY_FILE).read_bytes()
    assert new_key_bytes != old_key
    assert old_key.strip() not in new_key_bytes
    assert (data_dir / KEY_FILE).stat().st_mode & 0o777 == 0o600
    after = {row.name: row.ciphertext for row in await stored_rows(data_dir)}
    assert after.keys() == before.keys()
    assert all(after[name] != before[name] for name in before)
    async with opened(data_dir) as vault:
        assert (vault.get("TOKEN"), vault.get("OTHER")) == (VALUE, "other-value")
    (data_dir / KEY_FILE).write_bytes(old_key)  # the old key no longer reads anything
    with pytest.raises(MasterKeyError, match="does not decrypt"):
        async with opened(data_dir):
            pass


async def test_rotation_with_env_key_needs_the_new_key_first(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    current = new_key()
    monkeypatch.setenv(ENV_KEY, current)
    async with opened(data_dir) as vault:
        await vault.set("TOKEN", VALUE, by="x")
        with pytest.raises(MasterKeyError, match=f"{ENV_KEY}=<new key>,<current key>"):
            await vault.rotate()
    fresh = new_key()
    monkeypatch.setenv(ENV_KEY, f"{fresh},{current}")
    async with opened(data_dir) as vault:
        await vault.rotate()
    monkeypatch.setenv(ENV_KEY, fresh)  # the old key can go: every row uses the new one
    async with opened(data_dir) as vault:
        assert vault.get("TOKEN") == VALUE
    assert not (data_dir / KEY_FILE).exists()


async def test_bad_names_and_values_are_refused(data_dir: Path) -> None:
    async with opened(data_dir) as vault:
        with pytest.raises(SecretRejected, match="not a usable secret name"):
            await vault.set("1bad name", VALUE, by="x")
        with pytest.raises(SecretRejected, match="empty"):
            await vault.set("EMPTY", "", by="x")
        with pytest.raises(SecretRejected, match="shorter than 4"):
            await vault.set("SHORT", "abc", by="x")
        assert await vault.listing() == []


async def test_redaction_scrubs_values_longest_first_and_pem_lines(data_dir: Path) -> None:
    pem = "-----BEGIN KEY-----\nMIIBOgIBAAJBAKj34GkxFhD9\n-----END KEY-----"
    async with opened(data_dir) as vault:
        assert vault.redact(f"x {VALUE} y") == f"x {VALUE} y"  # nothing stored yet
        await vault.set("SHORTER", VALUE[:10], by="x")
        await vault.set("TOKEN", VALUE, by="x")
        await vault.set("PEM", pem, by="x")
        assert vault.redact(f"a {VALUE} b {VALUE[:10]}") == (
            "a [redacted:TOKEN] b [redacted:SHORTER]"
        )
        rewrapped = pem.replace("\n", "\r\n")
        assert "MIIBOgIBAAJBAKj34GkxFhD9" not in vault.redact(rewrapped)
        await vault.delete("TOKEN")
        assert vault.redact(VALUE) == "[redacted:SHORTER]" + VALUE[10:]
