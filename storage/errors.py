"""Errors raised by storage.

StorageError(Exception)
├── DatabaseUnavailable   the database cannot be reached or opened
└── AuditChainBroken      `audit verify` found a row whose hash does not match
"""

from __future__ import annotations


class StorageError(Exception):
    pass


class DatabaseUnavailable(StorageError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"Cannot open the database {url}: {reason}")
        self.url = url
