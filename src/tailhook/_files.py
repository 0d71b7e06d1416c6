"""Private files: what tailhook writes holds copies of log lines that are often readable only by
``adm`` (auth.log, the journal), so its folders are made 0700 and its files 0600 whatever the
umask, and one already there that others may read is reported.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

__all__ = ["private_file", "private_folder", "shared_mode"]

log = logging.getLogger(__name__)

FOLDER_MODE = 0o700
FILE_MODE = 0o600


def private_folder(folder: Path) -> None:
    """*folder* and every missing folder above it, made 0700; one that exists is left as it is
    (``shared_mode`` says whether others may read it)."""
    missing = []
    at = folder
    while not at.exists():
        missing.append(at)
        if at.parent == at:
            break
        at = at.parent
    for path in reversed(missing):
        try:
            path.mkdir(mode=FOLDER_MODE)
        except FileExistsError:
            continue  # made meanwhile by someone else: theirs
        os.chmod(path, FOLDER_MODE)  # mkdir's mode passes through the umask


def private_file(path: Path) -> None:
    """*path* made empty and 0600 if it does not exist (SQLite then gives its WAL and shared memory
    the database's mode)."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, FILE_MODE)  # the umask may have taken more
    finally:
        os.close(fd)


def shared_mode(path: Path) -> int | None:
    """The permission bits of *path* if others may read or write it (or enter it), or its group
    may and that group is not one of this process's own (a Kubernetes Secret mounted with the pod's
    ``fsGroup`` is 0440 to tailhook's own group); ``None`` if not, or it is not there."""
    try:
        found = path.stat()
    except OSError:
        return None
    mode = stat.S_IMODE(found.st_mode)
    ours = found.st_gid == os.getegid() or found.st_gid in os.getgroups()
    return mode if mode & 0o007 or (mode & 0o070 and not ours) else None
