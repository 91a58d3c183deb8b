"""Inter-process file locks and owner-only folders for the project folder (.vitalflow/)."""

from __future__ import annotations

import fcntl
import logging
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger("vitalflow.locks")


@contextmanager
def file_lock(path: Path, what: str) -> Iterator[None]:
    """Hold an exclusive flock on path (created 0600) for the block; the kernel releases it when
    the holder dies, so a killed process never leaves the lock taken. Says so when waiting."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.warning("another vitalflow process is %s; waiting for it", what)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def owner_only(folder: Path) -> Path:
    """Create folder (and missing parents) as 0700; an existing one loses group and other
    read and write bits (x may stay: the embedded server's system user passes through)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = stat.S_IMODE(folder.stat().st_mode)
    if mode & 0o066:
        folder.chmod(mode & ~0o066)
    return folder


def tighten_tree(root: Path) -> None:
    """Existing installs: no file or folder under root readable or writable by others."""
    for path in [root, *root.rglob("*")]:
        try:
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                continue
            if stat.S_IMODE(info.st_mode) & 0o066:
                path.chmod(stat.S_IMODE(info.st_mode) & ~0o066)
        except FileNotFoundError:  # removed meanwhile by another process
            continue


def write_private(path: Path, text: str) -> None:
    """Write a small file readable by its owner only (whatever the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)  # an existing file keeps its old mode through O_CREAT
