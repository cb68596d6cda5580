"""Owner-only files: what nova-pipeline writes to local disk holds the user's data (staging, the snapshot,
quarantine, reports, Dagster's run storage), so nobody else on the machine may read it.

Every entry point (the CLI, a Dagster step's resources) sets the umask to 077 once, which covers files that
pyarrow, SQLite (its -journal, -wal, -shm files too), pg_dump and Dagster create; directories that may
already exist from before are made 0700 explicitly.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_UMASK = 0o077


def owner_only_umask() -> None:
    """Add group and other bits to the process umask: new files 0600, new directories 0700 (inherited by
    subprocesses and Dagster's step processes)."""
    os.umask(os.umask(PRIVATE_UMASK) | PRIVATE_UMASK)


def private_dir(path: str | os.PathLike) -> Path:
    """Create `path` (and missing parents, each 0700) if needed and make it 0700; returns it."""
    path = Path(path)
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for p in reversed(missing):
        p.mkdir(mode=0o700, exist_ok=True)
        os.chmod(p, 0o700)
    os.chmod(path, 0o700)
    return path


def restrict_tree(path: str | os.PathLike) -> None:
    """Remove group and other permissions from `path` and everything under it (a tree written before these
    rules, or under a looser umask); symlinks are not followed."""
    path = Path(path)
    if not path.exists():
        return
    _restrict(path)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            _restrict(Path(root) / name)


def _restrict(p: Path) -> None:
    st = p.lstat()
    if not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) & PRIVATE_UMASK:
        os.chmod(p, stat.S_IMODE(st.st_mode) & ~PRIVATE_UMASK)
