"""The private work area under a backup destination: 0700 directories, 0600 files, swept after a crash.

A set is assembled in `<dest>/.work/<set id>/` and moved into place when
complete, so an interrupted backup never leaves a partial set beside the good
ones. On a local destination a running backup holds an exclusive flock on
`<dest>/.work/<set id>.lock`; a work directory whose lock nobody holds belongs
to a killed process and is removed by the next sweep. Other filesystems have
no such lock: there a work directory is swept once its name (the set id,
which starts with its UTC start time) is older than STALE_AFTER.
"""

from __future__ import annotations

import fcntl
import os
import re
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from fsspec import AbstractFileSystem

WORK_DIR = ".work"
STALE_AFTER = timedelta(days=1)
_STARTED = re.compile(r"^(\d{8}T\d{6}Z)")


def is_local(fs: AbstractFileSystem) -> bool:
    """Whether fs is the local filesystem (where modes and locks apply)."""
    protocols = (fs.protocol,) if isinstance(fs.protocol, str) else tuple(fs.protocol)
    return "file" in protocols


def make_private_dir(fs: AbstractFileSystem, path: str) -> None:
    """Create a directory readable only by its owner (0700 on local disks, whatever the umask)."""
    fs.makedirs(path, exist_ok=True)
    if is_local(fs):
        os.chmod(path, 0o700)


def open_private(fs: AbstractFileSystem, path: str) -> BinaryIO:
    """Open a new file for writing, readable only by its owner (0600 on local disks, whatever the umask)."""
    if not is_local(fs):
        return fs.open(path, "wb")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, "wb")


class WorkArea:
    """A private directory `<root>/.work/<name>` owned by this process until the `with` block ends.

    The directory is removed on exit unless it was moved away (the finished set).
    """

    def __init__(self, fs: AbstractFileSystem, root: str, name: str):
        self.fs, self.work_root, self.name = fs, f"{root}/{WORK_DIR}", name
        self.path = f"{self.work_root}/{name}"
        self._lock: int | None = None

    def __enter__(self) -> WorkArea:
        root = self.work_root.rsplit("/", 1)[0]
        if not self.fs.exists(root):
            make_private_dir(self.fs, root)  # a destination this creates is private too
        make_private_dir(self.fs, self.work_root)
        if is_local(self.fs):  # lock first: a sweep never sees the directory unlocked
            self._lock = _take_lock(f"{self.path}.lock")
        make_private_dir(self.fs, self.path)
        return self

    def __exit__(self, *exc) -> None:
        if self.fs.exists(self.path):
            self.fs.rm(self.path, recursive=True)
        if self._lock is not None:
            os.unlink(f"{self.path}.lock")
            os.close(self._lock)
            self._lock = None


def _take_lock(path: str) -> int:
    """An fd holding the flock on the file now at path (a sweep may unlink it between open and flock)."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)


def sweep_work(fs: AbstractFileSystem, root: str, now: datetime | None = None) -> list[str]:
    """Remove work directories left by killed backups under root; returns their paths."""
    work_root = f"{root}/{WORK_DIR}"
    if not fs.isdir(work_root):
        return []
    removed = []
    for entry in sorted(fs.ls(work_root, detail=False)):
        name = entry.rstrip("/").rsplit("/", 1)[-1]
        if name.endswith(".lock"):
            if is_local(fs) and not fs.exists(entry[:-len(".lock")]):
                _remove_if_unlocked(fs, entry[:-len(".lock")])  # an orphan lock file
            continue
        if is_local(fs):
            if _remove_if_unlocked(fs, entry):
                removed.append(entry)
        elif _older_than(name, now or datetime.now(UTC), STALE_AFTER):
            fs.rm(entry, recursive=True)
            removed.append(entry)
    return removed


def _remove_if_unlocked(fs: AbstractFileSystem, path: str) -> bool:
    """Remove path and its lock file when no live process holds the lock; True when path existed."""
    try:
        fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # a running backup
        existed = fs.exists(path)
        if existed:
            fs.rm(path, recursive=True)
        os.unlink(f"{path}.lock")
        return existed
    finally:
        os.close(fd)


def _older_than(name: str, now: datetime, age: timedelta) -> bool:
    m = _STARTED.match(name)
    if not m:
        return False
    return datetime.strptime(m.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC) < now - age
