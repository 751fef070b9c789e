"""Errors raised by storage.

StorageError(Exception)
├── DatabaseUnavailable          the database cannot be reached or opened
├── WriteFailed                  the database refused a queued write (it was dropped)
├── AuditChainBroken             `audit verify` found a row whose hash does not match
└── VaultError                   the secrets vault cannot do what was asked
    ├── MasterKeyError           the master key is missing, malformed or wrong
    ├── SecretUnreadable         stored rows do not decrypt with a key that reads others
    ├── SecretNotFound(LookupError)   no secret by that name
    ├── SecretRejected(ValueError)    a name or value that cannot be stored
    └── SecretGone(LookupError)       a request kept for later used a secret that is gone
"""

from __future__ import annotations


class StorageError(Exception):
    pass


class DatabaseUnavailable(StorageError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"Cannot open the database {url}: {reason}")
        self.url = url


class WriteFailed(StorageError):
    def __init__(self, reason: str) -> None:
        super().__init__(f"The database refused a queued write: {reason}")
        self.reason = reason


class VaultError(StorageError):
    pass


class MasterKeyError(VaultError):
    pass


class SecretUnreadable(VaultError):
    def __init__(self, names: list[str]) -> None:
        listed = ", ".join(names)
        super().__init__(
            f"Secret(s) {listed} cannot be decrypted although the master key reads the others: "
            f"the stored rows are damaged. Delete and set them again: "
            f"agentdeck secrets delete {names[0]} && agentdeck secrets set {names[0]}"
        )
        self.names = names


class SecretNotFound(VaultError, LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"No secret named {name!r}. `agentdeck secrets list` shows the names.")
        self.name = name


class SecretRejected(VaultError, ValueError):
    pass


class SecretGone(VaultError, LookupError):
    def __init__(self, label: str) -> None:
        super().__init__(
            f"This request used the secret {label}, which is no longer set; nothing ran. "
            f"Set it again and ask again."
        )
        self.label = label
