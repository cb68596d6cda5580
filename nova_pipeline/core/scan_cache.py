"""Results of whole-table scans, kept in process while what was scanned is unchanged.

One migration reads the same data in several phases: the profile finds each
column's storage classes and each partitioned table's days, and the exports
need the same facts; a range run reads its staged rows' facts while it loads,
and its checks need them again. What one phase scanned, a later phase in the
same process reuses. Each entry keeps a stamp of what it was computed from
(for a SQLite file, its and its WAL's modification time and size), so a
changed input is scanned again; at most MAX_ENTRIES are kept, least recently
used dropped first.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")
MAX_ENTRIES = 256
_RESULTS: OrderedDict[Hashable, tuple[Hashable, Any]] = OrderedDict()


def remembered(key: Hashable, stamp: Hashable, scan: Callable[[], T]) -> T:
    """The value stored for `key` while its input still has `stamp`, or `scan()`'s, stored."""
    value = _get(key, stamp)
    if value is None:
        value = scan()
        _put(key, stamp, value)
    return value


def get(sqlite_path: str | os.PathLike, key: Hashable) -> Any | None:
    """The value stored for `key` of a SQLite file while the file is as it was then, else None."""
    path = os.path.abspath(sqlite_path)
    return _get((path, key), _stamp(path))


def put(sqlite_path: str | os.PathLike, key: Hashable, value: Any) -> None:
    """Store `value` for `key` of a SQLite file and the file's current state."""
    path = os.path.abspath(sqlite_path)
    _put((path, key), _stamp(path), value)


def cached(sqlite_path: str | os.PathLike, key: Hashable, scan: Callable[[], T]) -> T:
    """The stored value for `key` of a SQLite file, or `scan()`'s, stored."""
    path = os.path.abspath(sqlite_path)
    return remembered((path, key), _stamp(path), scan)


def _stamp(path: str) -> tuple:
    return tuple((st.st_mtime_ns, st.st_size) for st in (os.stat(p) for p in (path, f"{path}-wal") if os.path.exists(p)))


def _get(key: Hashable, stamp: Hashable) -> Any | None:
    hit = _RESULTS.get(key)
    if hit is None or hit[0] != stamp:
        return None
    _RESULTS.move_to_end(key)
    return hit[1]


def _put(key: Hashable, stamp: Hashable, value: Any) -> None:
    _RESULTS[key] = stamp, value
    _RESULTS.move_to_end(key)
    while len(_RESULTS) > MAX_ENTRIES:
        _RESULTS.popitem(last=False)
