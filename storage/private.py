"""The data directory and its files: readable by this user only, whatever the umask.

The directory holds the database (audit trail, transcripts, the inbox), the log and the
key files. It is created 0700 and every file in it 0600, by explicit modes: a process
started with umask 022 (or 000) must not make them readable by others. A file that an
older version left readable is made private when it is next opened; an existing
directory is left as its owner made it (its files are private either way).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

DIRECTORY_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> Path:
    """Create the directory (and its parents) if missing; a created one gets mode 0700."""
    if not path.is_dir():
        path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
        os.chmod(path, DIRECTORY_MODE)  # mkdir's mode passes through the umask
    return path


def private_file(path: Path) -> Path:
    """Create the file empty (mode 0600) if missing; take others' access to one there."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
    try:
        mode = stat.S_IMODE(os.fstat(fd).st_mode)
        if mode & 0o077:  # left so by an older version (a new one is 0600 whatever the umask)
            os.fchmod(fd, mode & 0o700)
    finally:
        os.close(fd)
    return path


def tighten(path: Path) -> None:
    """Take group's and others' access to an existing file away; a missing one is fine."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if not mode & 0o077:
        return
    try:
        os.chmod(path, mode & 0o700)
    except PermissionError:  # not ours: say so, do not stop
        log.warning("%s has mode %03o and is not ours to change: chmod 600 it", path, mode)
