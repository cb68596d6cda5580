"""Results of whole-table scans of a SQLite file, kept in process while the file is unchanged.

One migration reads the same snapshot in several phases: the profile finds each
column's storage classes and each partitioned table's days, and the exports
need the same facts. What one phase scanned, a later phase in the same
process reuses. Entries are keyed by the file's (and its WAL's) modification
time and size, so a changed file is scanned again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")
_RESULTS: dict[tuple[str, Hashable], tuple[tuple, Any]] = {}


def _stamp(path: str) -> tuple:
    return tuple((st.st_mtime_ns, st.st_size) for st in (os.stat(p) for p in (path, f"{path}-wal") if os.path.exists(p)))


def get(sqlite_path: str | os.PathLike, key: Hashable) -> Any | None:
    """The value stored for `key` while the file is as it was then, else None."""
    path = os.path.abspath(sqlite_path)
    hit = _RESULTS.get((path, key))
    return hit[1] if hit is not None and hit[0] == _stamp(path) else None


def put(sqlite_path: str | os.PathLike, key: Hashable, value: Any) -> None:
    """Store `value` for `key` and the file's current state."""
    path = os.path.abspath(sqlite_path)
    _RESULTS[(path, key)] = _stamp(path), value


def cached(sqlite_path: str | os.PathLike, key: Hashable, scan: Callable[[], T]) -> T:
    """The stored value for `key`, or `scan()`'s, stored."""
    value = get(sqlite_path, key)
    if value is None:
        value = scan()
        put(sqlite_path, key, value)
    return value
