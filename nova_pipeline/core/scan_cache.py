"""Facts computed by whole-table scans, stored with a stamp of what they were computed from.

One migration reads the same data in several phases: the profile finds each
column's storage classes and each partitioned table's days, and the exports
need the same facts; a range run reads its staged rows' facts while it loads,
and its checks need them again. A FactsStore keeps what one phase scanned for
the next, in whatever process (or machine) that phase runs: each fact is a
small JSON file under the staging area's `facts/` directory (local or
object storage), holding the stamp of its input (for a snapshot, its sha256;
for another SQLite file, its and its WAL's modification time and size; for
staged Parquet, the files' paths, sizes and times). A stale stamp means the
fact is scanned again. Each store also keeps up to `max_entries` values in
memory, least recently used dropped first, so a process does not re-read what
it just wrote.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

from nova_pipeline.core.staging import Staging, identity_path

T = TypeVar("T")
MAX_ENTRIES = 256
FACTS_DIR = "facts"


class FactsStore:
    """Stamped facts under a staging area (memory only when `staging` is None)."""

    def __init__(self, staging: Staging | None, max_entries: int = MAX_ENTRIES):
        self.staging = staging
        self.max_entries = max_entries
        self._memo: OrderedDict[str, tuple[Any, Any]] = OrderedDict()

    def remembered(self, key: Hashable, stamp: Hashable, scan: Callable[[], T]) -> T:
        """The value stored for `key` while its input still has `stamp`, or `scan()`'s, stored."""
        value = self.get(key, stamp)
        if value is None:
            value = scan()
            self.put(key, stamp, value)
        return value

    def get(self, key: Hashable, stamp: Hashable) -> Any | None:
        """The value stored for `key` with `stamp`, else None."""
        name, want = _name(key), _normal(stamp)
        hit = self._memo.get(name)
        if (hit is None or hit[0] != want) and (stored := self._read(name)) is not None:
            hit = stored["stamp"], decode(stored["value"])  # another process may have scanned it since
            self._remember(name, hit)
        if hit is None or hit[0] != want:
            return None
        self._memo.move_to_end(name)
        return hit[1]

    def put(self, key: Hashable, stamp: Hashable, value: Any) -> None:
        """Store `value` for `key` computed from an input with `stamp`."""
        name, stamp = _name(key), _normal(stamp)
        self._remember(name, (stamp, value))
        self._write(name, {"key": repr(key), "stamp": stamp, "value": encode(value)})

    def cached(self, sqlite_path: str | os.PathLike, key: Hashable, scan: Callable[[], T]) -> T:
        """The stored value for `key` of a SQLite file as it is now, or `scan()`'s, stored."""
        return self.remembered((file_identity(sqlite_path), key), file_identity(sqlite_path), scan)

    def get_file(self, sqlite_path: str | os.PathLike, key: Hashable) -> Any | None:
        """The value stored for `key` of a SQLite file while the file is as it was then, else None."""
        return self.get((file_identity(sqlite_path), key), file_identity(sqlite_path))

    def put_file(self, sqlite_path: str | os.PathLike, key: Hashable, value: Any) -> None:
        """Store `value` for `key` of a SQLite file as it is now."""
        self.put((file_identity(sqlite_path), key), file_identity(sqlite_path), value)

    def _remember(self, name: str, entry: tuple[Any, Any]) -> None:
        self._memo[name] = entry
        self._memo.move_to_end(name)
        while len(self._memo) > self.max_entries:
            self._memo.popitem(last=False)

    def _path(self, name: str) -> str:
        return f"{self.staging.root}/{FACTS_DIR}/{name}.json"

    def _read(self, name: str) -> dict | None:
        return self.staging.read_json(self._path(name)) if self.staging is not None else None

    def _write(self, name: str, record: dict) -> None:
        if self.staging is None:
            return
        fs, path = self.staging.fs, self._path(name)
        fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        with fs.open_output_stream(tmp) as out:
            out.write(json.dumps(record).encode())
        fs.move(tmp, path)  # readers never see half a file


def file_identity(sqlite_path: str | os.PathLike) -> tuple:
    """What a SQLite file's facts are stamped with: ("sha256", digest) for a snapshot whose identity record
    (`<name>.json` beside it, written after the copy) is current, else (path, its and its WAL's mtime and size)."""
    path = Path(os.path.abspath(sqlite_path))
    stats = tuple((st.st_mtime_ns, st.st_size) for st in (os.stat(p) for p in (path, Path(f"{path}-wal")) if p.exists()))
    identity = identity_path(path)
    try:
        if stats and identity.stat().st_mtime_ns >= stats[0][0]:
            record = json.loads(identity.read_text())
            if record.get("bytes") == stats[0][1] and record.get("sha256") and len(stats) == 1:
                return ("sha256", record["sha256"])
    except (OSError, ValueError):
        pass
    return (str(path), stats)


def _name(key: Hashable) -> str:
    return hashlib.sha256(repr(key).encode()).hexdigest()[:32]


def _normal(stamp: Hashable) -> Any:
    """A stamp as it reads back from JSON (tuples become lists), so stored and fresh stamps compare."""
    return json.loads(json.dumps(encode(stamp)))


def encode(value: Any) -> Any:
    """A JSON-able form of sets, tuples and dicts with non-string keys (decode reverses it)."""
    if isinstance(value, (set, frozenset)):
        return {"__set__": [encode(v) for v in sorted(value, key=repr)]}
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value):
            return {k: encode(v) for k, v in value.items()}
        return {"__items__": [[encode(k), encode(v)] for k, v in value.items()]}
    return value


def decode(value: Any) -> Any:
    """The value `encode` was given."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        if "__set__" in value:
            return {decode(v) for v in value["__set__"]}
        if "__tuple__" in value:
            return tuple(decode(v) for v in value["__tuple__"])
        if "__items__" in value:
            return {decode(k): decode(v) for k, v in value["__items__"]}
        return {k: decode(v) for k, v in value.items()}
    return value
