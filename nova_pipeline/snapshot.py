"""SQLite source snapshot: a consistent online copy, its sha256 and its health.

The copy is taken with SQLite's backup API from a read-only connection, so it
is consistent even while the application keeps writing (WAL or rollback
journal): the backup step reads one committed state of the database. Every
later phase reads the snapshot, never the live file. `nova-pipeline migrate`
starts it (started_snapshot) while Dagster loads; the snapshot asset then
takes that result.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from nova_pipeline.spec import Spec

_CHUNK = 1 << 20


class SourceError(ValueError):
    """The SQLite source is missing, unreadable or not a database; the message is one line."""


@dataclass(frozen=True)
class Snapshot:
    """A snapshot file and what was proven about it."""

    path: Path
    sha256: str
    bytes: int
    integrity: list[str]
    foreign_key_violations: list[dict]
    seconds: float

    @property
    def ok(self) -> bool:
        """True when integrity_check passed and no foreign key is violated."""
        return self.integrity == ["ok"] and not self.foreign_key_violations


def quote(name: str) -> str:
    """A SQLite identifier in double quotes (embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def connect_readonly(source: Path) -> sqlite3.Connection:
    """A read-only connection to an existing SQLite file; SourceError when it is not one."""
    source = Path(source)
    if not source.is_file():
        raise SourceError(f"{source}: SQLite source not found")
    try:
        conn = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=30)
        # Opening is lazy: the first read is what proves the file is a database.
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as e:
        raise SourceError(f"{source}: cannot read SQLite source: {e}") from None
    return conn


def sha256_file(path: Path) -> str:
    """sha256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def snapshot_path(spec: Spec) -> Path:
    """Local path of the consistent SQLite copy that every export reads."""
    base = spec.resolve(spec.staging) if "://" not in spec.staging else Path("data/.nova")
    return base / "snapshot" / "source.sqlite"


_STARTED: dict[tuple[Path, Path], Future] = {}


def _started_key(source: Path, dest: Path) -> tuple[Path, Path]:
    return Path(source).resolve(), Path(dest).resolve()


@contextmanager
def started_snapshot(source: Path, dest: Path) -> Iterator[None]:
    """Begin take_snapshot(source, dest) at once in a background thread (SQLite and hashlib work with the GIL
    free); within the block, take_snapshot of the same files returns its result or raises its error. On exit
    a result not taken is waited for (no copy outlives the block) and dropped."""
    key, started = _started_key(source, dest), Future()

    def run() -> None:
        try:
            started.set_result(_take_snapshot(source, dest))
        except BaseException as e:
            started.set_exception(e)

    _STARTED[key] = started
    threading.Thread(target=run, name="snapshot", daemon=True).start()
    try:
        yield
    finally:
        if _STARTED.get(key) is started:
            del _STARTED[key]
            started.exception()


def take_snapshot(source: Path, dest: Path) -> Snapshot:
    """Copy `source` to `dest` consistently, hash it, and run integrity and foreign key checks on the copy
    (or take the result of the started_snapshot of the same files)."""
    started = _STARTED.pop(_started_key(source, dest), None)
    return started.result() if started is not None else _take_snapshot(source, dest)


def _take_snapshot(source: Path, dest: Path) -> Snapshot:
    started = time.perf_counter()
    source, dest = Path(source), Path(dest)
    src = connect_readonly(source)
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    copy = sqlite3.connect(partial)
    try:
        src.backup(copy)  # pages=-1: one step, one read transaction, one committed state
        # A WAL source leaves the copy flagged as WAL; make it one self-contained file.
        copy.execute("PRAGMA journal_mode=DELETE").fetchone()
        copy.close()
        # The checks and the hash only read the copy, and SQLite and hashlib release the GIL: run them side by side.
        with ThreadPoolExecutor(3) as pool:
            digest = pool.submit(sha256_file, partial)
            fk_rows = pool.submit(_pragma, partial, "foreign_key_check")
            integrity = [pool.submit(_pragma, partial, pragma) for pragma in _integrity_pragmas(partial)]
            violations = [{"table": t, "rowid": rowid, "parent": parent, "fkid": fkid}
                          for t, rowid, parent, fkid in fk_rows.result()]
            problems = dict.fromkeys(row[0] for check in integrity for row in check.result() if row[0] != "ok")
            checked = Snapshot(path=dest, sha256=digest.result(), bytes=partial.stat().st_size,
                               integrity=list(problems) or ["ok"], foreign_key_violations=violations, seconds=0.0)
    except sqlite3.Error as e:
        copy.close()
        partial.unlink(missing_ok=True)
        raise SourceError(f"{source}: cannot snapshot SQLite source: {e}") from None
    finally:
        src.close()
    os.replace(partial, dest)
    return replace(checked, seconds=time.perf_counter() - started)


_CHECK_CACHE_KIB = 16384  # page cache of each check's connection (they look rows up in each index)


def _integrity_pragmas(path: Path) -> list[str]:
    """`integrity_check` as parts that run side by side: `quick_check` (every page, the freelist, NOT NULL and
    CHECK constraints) and `integrity_check(T)` per table (T's rows against its indexes, UNIQUE), largest first.
    Together they check what the whole `integrity_check` does: 3.3 GB in 26 s instead of 40 s on two cores."""
    with closing(sqlite3.connect(path)) as conn:
        tables = [name for (name,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' "
            "AND sql NOT LIKE 'CREATE VIRTUAL%'")]
        tables.sort(key=lambda name: _rows_estimate(conn, name), reverse=True)
    return ["quick_check"] + [f"integrity_check({quote(name)})" for name in tables]


def _rows_estimate(conn: sqlite3.Connection, table: str) -> int:
    try:
        return conn.execute(f"SELECT max(rowid) FROM {quote(table)}").fetchone()[0] or 0
    except sqlite3.Error:  # WITHOUT ROWID
        return 0


def _pragma(path: Path, pragma: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        conn.execute(f"PRAGMA cache_size=-{_CHECK_CACHE_KIB}")
        return conn.execute(f"PRAGMA {pragma}").fetchall()
    finally:
        conn.close()
