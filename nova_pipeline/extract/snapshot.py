"""SQLite source snapshot: a consistent online copy, its sha256 and its health.

The copy is taken with SQLite's backup API from a read-only connection, so it
is consistent even while the application keeps writing (WAL or rollback
journal): the backup step reads one committed state of the database. Every
later phase reads the snapshot, never the live file. `nova-pipeline migrate`
starts it (started_snapshot, kept in its RunContext) while Dagster loads; the
snapshot asset, run in the same process, then takes that result.

Each source file has its own snapshot (under its staging area, see
staging.local_area; beside an object-store area too, core/run_context.py), and next to it `source.json`, the snapshot's identity:
the source path, the time the copy's read transaction began, the copy's
sha256 and the source's WAL frame count or change counter at that moment.
Reports state these facts, and verified_facts proves that the snapshot a run
compares against is still the one it took.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sqlite3
import struct
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nova_pipeline.core.background import begun
from nova_pipeline.core.file_modes import private_dir, restrict_tree
from nova_pipeline.core.run_context import RunContext
from nova_pipeline.core.spec import Spec
from nova_pipeline.core.staging import identity_path, local_area, snapshot_in

_CHUNK = 1 << 20
SQLITE_HEADER = b"SQLite format 3\x00"
BUSY_SECONDS = 5.0  # how long a read waits for another process's write lock before the source counts as locked


class SourceError(ValueError):
    """The SQLite source is missing, unreadable or not a database; the message is one line."""


class AreaUnavailable(SourceError):
    """The source's staging area is held by another migration or cannot be created; the message is one line."""


@dataclass(frozen=True)
class Snapshot:
    """A snapshot file and what was proven about it."""

    path: Path
    sha256: str
    bytes: int
    integrity: list[str]
    foreign_key_violations: list[dict]
    seconds: float
    source: str = ""
    taken_at: str = ""
    source_state: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when integrity_check passed and no foreign key is violated."""
        return self.integrity == ["ok"] and not self.foreign_key_violations


def quote(name: str) -> str:
    """A SQLite identifier in double quotes (embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def connect_readonly(source: Path) -> sqlite3.Connection:
    """A read-only connection to an existing, whole SQLite file; SourceError (one line naming the file) when it
    is missing, empty, not SQLite, shorter than its header says, unreadable or locked beyond BUSY_SECONDS."""
    source = Path(source)
    if not source.is_file():
        raise SourceError(f"{source}: SQLite source not found")
    _check_header(source)
    try:
        conn = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True, timeout=BUSY_SECONDS)
        # Opening is lazy: the first read is what proves the file is a database.
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except sqlite3.Error as e:
        raise _source_error(source, e, "cannot read SQLite source") from None
    return conn


def check_source(source: Path, tables: Iterable[str] = ()) -> None:
    """A migration's pre-flight: SourceError unless connect_readonly accepts `source` and it holds every table
    of `tables` (SQLite compares names case-insensitively)."""
    with closing(connect_readonly(source)) as conn:
        try:
            names = {n.casefold() for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type IN ('table', 'view')")}
        except sqlite3.Error as e:
            raise _source_error(Path(source), e, "cannot read the schema of the SQLite source") from None
    missing = [t for t in tables if t.casefold() not in names]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise SourceError(f"{source}: no table {missing[0]!r} in the SQLite source, but the spec migrates it{more}")


def _check_header(source: Path) -> None:
    size = source.stat().st_size
    if size == 0:
        raise SourceError(f"{source}: empty file (0 bytes), not a SQLite database")
    with open(source, "rb") as f:
        header = f.read(100)
    if not header.startswith(SQLITE_HEADER):
        raise SourceError(f"{source}: not a SQLite database (the file does not start with the SQLite header)")
    if len(header) < 100:
        raise SourceError(f"{source}: truncated SQLite database ({size} bytes, shorter than its header)")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    # The page count is valid when the change counter equals the version-valid-for number.
    if header[24:28] == header[92:96] and size < pages * page_size:
        raise SourceError(f"{source}: truncated SQLite database: its header says {pages:,} pages of {page_size:,} "
                          f"bytes, the file has {size:,} bytes")


def _source_error(source: Path, e: sqlite3.Error, what: str) -> SourceError:
    if getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY or "locked" in str(e):
        return SourceError(f"{source}: source is locked by another process (waited {BUSY_SECONDS:g} s); "
                           f"retry when its writer has finished")
    return SourceError(f"{source}: {what}: {e}")


@contextmanager
def exclusive_area(spec: Spec) -> Iterator[Path]:
    """Hold the spec source's staging area for one migration (an advisory file lock, released when the block
    or the process ends); AreaUnavailable at once when another migration holds it or it cannot be created."""
    area = local_area(spec)
    try:
        private_dir(area)
        restrict_tree(area.parent)  # areas written before staged files were owner-only
        lock = open(area / ".lock", "a+")
    except OSError as e:
        raise AreaUnavailable(f"{area}: cannot create the staging area: {e.strerror}") from None
    with lock as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise AreaUnavailable(f"{area}: the staging area of {spec.resolve(spec.source.sqlite)} is in use by another "
                                  f"migration ({holder}); wait for it to finish, or give this spec its own `staging:`"
                                  ) from None
        try:
            f.truncate(0)
            f.write(f"pid {os.getpid()}")
            f.flush()
            yield area
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def sha256_file(path: Path) -> str:
    """sha256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def snapshot_path(spec: Spec) -> Path:
    """Local path of the consistent SQLite copy of the spec's source that every export reads (one per source
    file: in the source's staging area)."""
    return snapshot_in(local_area(spec))


def verified_facts(ctx: RunContext, taken: dict[str, Any] | None = None) -> dict[str, Any]:
    """What the migration read, for the report: the identity of its source's snapshot (local, or beside an
    object-store staging area) and its staging area, with `problem` set unless the snapshot is of the spec's
    source and (given `taken`, the sha256 and taken_at a run recorded when it took its snapshot) the very one
    that run took."""
    path = ctx.snapshot_location
    source = str(ctx.source.resolve())
    facts = ctx.snapshot_identity() or {"source": source}
    facts.update(path=path, staging=ctx.staging.uri)
    if "sha256" not in facts:
        facts["problem"] = f"snapshot {path} has no identity record: it was never completed"
    elif facts.get("source") != source:
        facts["problem"] = f"snapshot {path} is of {facts.get('source')}, not of this spec's source {source}"
    elif not ctx.snapshot_exists():
        facts["problem"] = f"snapshot {path} is missing"
    elif taken and (taken.get("sha256"), taken.get("taken_at")) != (facts["sha256"], facts.get("taken_at")):
        facts["problem"] = (f"snapshot {path} was taken at {facts.get('taken_at')} by another run, not at "
                            f"{taken.get('taken_at')} by this one")
    return facts


def _started_key(source: Path, dest: Path) -> tuple[Path, Path]:
    return Path(source).resolve(), Path(dest).resolve()


@contextmanager
def started_snapshot(source: Path, dest: Path, pending: dict) -> Iterator[None]:
    """Begin take_snapshot(source, dest) at once in a background thread (SQLite and hashlib work with the GIL
    free), kept in `pending` (a RunContext's pending_snapshots); within the block, take_snapshot of the same
    files with the same `pending` returns its result or raises its error. On exit a result not taken is waited
    for (no copy outlives the block) and dropped."""
    key = _started_key(source, dest)
    started = pending[key] = begun(_take_snapshot, source, dest, name="snapshot")
    try:
        yield
    finally:
        if pending.get(key) is started:
            del pending[key]
            started.exception()


def take_snapshot(source: Path, dest: Path, pending: dict | None = None) -> Snapshot:
    """Copy `source` to `dest` consistently, hash it, and run integrity and foreign key checks on the copy
    (or take the result of the started_snapshot of the same files in `pending`)."""
    started = pending.pop(_started_key(source, dest), None) if pending is not None else None
    return started.result() if started is not None else _take_snapshot(source, dest)


def _take_snapshot(source: Path, dest: Path) -> Snapshot:
    started = time.perf_counter()
    source, dest = Path(source), Path(dest)
    src = connect_readonly(source)
    private_dir(dest.parent)
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    copy = sqlite3.connect(partial)
    try:
        taken_at, state = _begin_read(src, source)
        src.backup(copy)  # within that read transaction: one committed state, the one `state` describes
        # A WAL source leaves the copy flagged as WAL; make it one self-contained file.
        copy.execute("PRAGMA journal_mode=DELETE").fetchone()
        copy.close()
        # The checks and the hash only read the copy, and SQLite and hashlib release the GIL: run them side by side.
        with ThreadPoolExecutor(3) as pool:
            digest = pool.submit(sha256_file, partial)
            fk_rows = pool.submit(_pragma, partial, "foreign_key_check")
            integrity = [pool.submit(_pragma, partial, pragma)
                         for pragma in _integrity_pragmas(partial, integrity_level())]
            violations = [{"table": t, "rowid": rowid, "parent": parent, "fkid": fkid}
                          for t, rowid, parent, fkid in fk_rows.result()]
            problems = dict.fromkeys(row[0] for check in integrity for row in check.result() if row[0] != "ok")
            checked = Snapshot(path=dest, sha256=digest.result(), bytes=partial.stat().st_size,
                               integrity=list(problems) or ["ok"], foreign_key_violations=violations, seconds=0.0,
                               source=str(source.resolve()), taken_at=taken_at, source_state=state)
    except sqlite3.Error as e:
        copy.close()
        partial.unlink(missing_ok=True)
        raise _source_error(source, e, "cannot snapshot SQLite source") from None
    finally:
        src.close()
    identity = identity_path(dest)
    identity.unlink(missing_ok=True)  # no moment where the new copy sits beside the old copy's identity
    os.replace(partial, dest)
    _write_identity(checked, identity)
    return replace(checked, seconds=time.perf_counter() - started)


def _write_identity(snap: Snapshot, identity: Path) -> None:
    facts = {k: v for k, v in asdict(snap).items() if k in ("source", "taken_at", "sha256", "bytes", "source_state")}
    partial = identity.with_name(identity.name + ".partial")
    partial.write_text(json.dumps(facts, indent=2))
    os.replace(partial, identity)


def _begin_read(conn: sqlite3.Connection, source: Path) -> tuple[str, dict[str, Any]]:
    """Open a read transaction on `conn` and say which committed state it sees: (UTC time it began, state).

    In WAL mode the state is `wal_frames`, the frames of the WAL the transaction includes (mxFrame of the
    wal-index, read before and after the transaction's first read: when both agree, no commit came between).
    Otherwise it is `change_counter` from the file header, which no writer can change while the transaction
    holds its shared lock. PRAGMA data_version is per connection, so it says nothing across processes."""
    journal = conn.execute("PRAGMA journal_mode").fetchone()[0].lower()
    stat = source.stat()
    state: dict[str, Any] = {"journal_mode": journal, "file_bytes": stat.st_size,
                             "file_mtime": datetime.fromtimestamp(stat.st_mtime, UTC).isoformat(timespec="milliseconds")}
    for _ in range(20):
        before = _wal_frames(source) if journal == "wal" else None
        taken_at = _begin(conn)
        if journal != "wal":
            with open(source, "rb") as f:
                state["change_counter"] = int.from_bytes(f.read(28)[24:28], "big")
            return taken_at, state
        if before is None or before == _wal_frames(source):
            return taken_at, {**state, "wal_frames": before}
        conn.rollback()
    return _begin(conn), {**state, "wal_frames": None}  # commits kept coming: the count is not known exactly


def _begin(conn: sqlite3.Connection) -> str:
    """Start a read transaction (at its first read); the UTC time it started."""
    taken_at = datetime.now(UTC).isoformat(timespec="milliseconds")
    conn.execute("BEGIN")
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return taken_at


def _wal_frames(source: Path) -> int | None:
    """mxFrame of the source's wal-index (`-shm`), None when there is none or its two header copies differ."""
    try:
        with open(f"{source}-shm", "rb") as f:
            header = f.read(96)
    except OSError:
        return None
    if len(header) < 96 or header[:48] != header[48:96]:
        return None
    return struct.unpack_from("=I", header, 16)[0]


_CHECK_CACHE_KIB = 16384  # page cache of each check's connection (they look rows up in each index)
INTEGRITY_ENV = "NOVA_INTEGRITY"
INTEGRITY_LEVELS = ("full", "quick")


def integrity_level() -> str:
    """How much of `integrity_check` a snapshot runs: NOVA_INTEGRITY (`migrate --integrity`), default `full`;
    SourceError for another value."""
    level = os.environ.get(INTEGRITY_ENV) or "full"
    if level not in INTEGRITY_LEVELS:
        raise SourceError(f"{INTEGRITY_ENV}={level!r}: use one of {', '.join(INTEGRITY_LEVELS)}")
    return level


def _integrity_pragmas(path: Path, level: str = "full") -> list[str]:
    """`integrity_check` as parts that run side by side: `quick_check` (every page, the freelist, NOT NULL and
    CHECK constraints) and `integrity_check(T)` per table (T's rows against its indexes, UNIQUE), largest first.
    Together they check what the whole `integrity_check` does, in less time on two cores (docs/performance.md).
    Level `quick` runs `quick_check` alone: no row is looked up in an index."""
    if level == "quick":
        return ["quick_check"]
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
