"""Source snapshots: consistent online copies, sha256, integrity and foreign key checks."""

from __future__ import annotations

import hashlib
import sqlite3

import pytest

from nova_pipeline.extract import snapshot
from nova_pipeline.extract.snapshot import SourceError, connect_readonly, started_snapshot, take_snapshot


def _count(path, table="t") -> int:
    with sqlite3.connect(path) as conn:
        return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]


def _make(path, rows=10, wal=False) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    if wal:
        assert conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    conn.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t(v) VALUES (?)", [(f"row {i}",) for i in range(rows)])
    return conn


def test_snapshot_is_a_verified_copy(tmp_path):
    _make(tmp_path / "src.sqlite", rows=25).close()
    snap = take_snapshot(tmp_path / "src.sqlite", tmp_path / "out" / "snap.sqlite")
    assert snap.path == tmp_path / "out" / "snap.sqlite"
    assert snap.sha256 == hashlib.sha256(snap.path.read_bytes()).hexdigest()
    assert snap.bytes == snap.path.stat().st_size > 0
    assert snap.integrity == ["ok"] and snap.foreign_key_violations == [] and snap.ok
    assert snap.seconds > 0
    assert _count(snap.path) == 25
    assert not (tmp_path / "out" / "snap.sqlite.partial").exists()


def test_snapshot_of_a_live_wal_database_holds_committed_rows_only(tmp_path):
    src = tmp_path / "live.sqlite"
    writer = _make(src, rows=100, wal=True)  # committed rows still sit in the -wal file
    writer.execute("BEGIN")
    writer.executemany("INSERT INTO t(v) VALUES (?)", [("uncommitted",)] * 50)

    first = take_snapshot(src, tmp_path / "first.sqlite")
    assert _count(first.path) == 100
    writer.execute("COMMIT")
    second = take_snapshot(src, tmp_path / "second.sqlite")
    writer.close()

    assert _count(second.path) == 150
    assert first.sha256 != second.sha256
    # The copy is one self-contained file: rollback-journal header, no -wal needed.
    assert second.path.read_bytes()[18:20] == b"\x01\x01"
    assert not (tmp_path / "second.sqlite-wal").exists()


def test_snapshot_while_a_rollback_journal_writer_holds_a_reserved_lock(tmp_path):
    src = tmp_path / "live.sqlite"
    writer = _make(src, rows=5)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("INSERT INTO t(v) VALUES ('pending')")
    snap = take_snapshot(src, tmp_path / "snap.sqlite")
    writer.execute("ROLLBACK")
    writer.close()
    assert _count(snap.path) == 5


def test_foreign_key_violations_are_reported(tmp_path):
    src = tmp_path / "fk.sqlite"
    with sqlite3.connect(src) as conn:
        conn.executescript("""
            CREATE TABLE parent(id INTEGER PRIMARY KEY);
            CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id));
            INSERT INTO parent VALUES (1);
            INSERT INTO child VALUES (10, 1), (11, 2), (12, 3);
        """)
    conn.close()
    snap = take_snapshot(src, tmp_path / "snap.sqlite")
    assert snap.integrity == ["ok"] and not snap.ok
    assert snap.foreign_key_violations == [
        {"table": "child", "rowid": 11, "parent": "parent", "fkid": 0},
        {"table": "child", "rowid": 12, "parent": "parent", "fkid": 0},
    ]


def test_integrity_problems_are_reported(tmp_path):
    src = tmp_path / "broken.sqlite"
    conn = sqlite3.connect(src, isolation_level=None)
    conn.executescript("""
        CREATE TABLE t(a, b);
        CREATE INDEX t_a ON t(a);
        INSERT INTO t VALUES (1, 'x'), (2, 'y'), (3, 'z');
        PRAGMA writable_schema = ON;
        UPDATE sqlite_master SET sql = 'CREATE INDEX t_a ON t(b)' WHERE name = 't_a';
    """)
    conn.close()  # the index now claims to cover b but holds the values of a
    snap = take_snapshot(src, tmp_path / "snap.sqlite")
    assert snap.integrity != ["ok"] and any("t_a" in line for line in snap.integrity)
    assert not snap.ok


def test_missing_source_is_a_one_line_error_naming_the_file(tmp_path):
    missing = tmp_path / "nope.sqlite"
    with pytest.raises(SourceError, match="nope.sqlite: SQLite source not found") as err:
        take_snapshot(missing, tmp_path / "snap.sqlite")
    assert "\n" not in str(err.value)
    assert not (tmp_path / "snap.sqlite").exists()


def test_a_file_that_is_not_a_database_is_rejected(tmp_path):
    bogus = tmp_path / "notes.sqlite"
    bogus.write_text("this is not a database\n" * 100)
    with pytest.raises(SourceError, match=r"notes.sqlite: not a SQLite database \(the file does not start with the SQLite header\)"):
        take_snapshot(bogus, tmp_path / "snap.sqlite")
    with pytest.raises(SourceError, match="notes.sqlite"):
        connect_readonly(bogus)


def test_readonly_connection_cannot_write(tmp_path):
    _make(tmp_path / "src.sqlite").close()
    conn = connect_readonly(tmp_path / "src.sqlite")
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        conn.execute("INSERT INTO t(v) VALUES ('x')")
    conn.close()


def test_every_kind_of_table_is_checked_and_a_broken_index_named(tmp_path):
    src = tmp_path / "kinds.sqlite"
    conn = sqlite3.connect(src, isolation_level=None)
    conn.executescript("""
        CREATE TABLE "odd ""name"(id INTEGER PRIMARY KEY, v TEXT UNIQUE);
        CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID;
        CREATE VIRTUAL TABLE docs USING fts5(body);
        CREATE TABLE big(a, b);
        CREATE INDEX big_a ON big(a);
        INSERT INTO "odd ""name"(v) VALUES ('x'), ('y');
        INSERT INTO kv VALUES ('a', 1), ('b', 2);
        INSERT INTO docs VALUES ('hello world');
        WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 500) INSERT INTO big SELECT i, -i FROM n;
    """)
    assert take_snapshot(src, tmp_path / "ok.sqlite").integrity == ["ok"]
    conn.executescript("PRAGMA writable_schema = ON; UPDATE sqlite_master SET sql = 'CREATE INDEX big_a ON big(b)' "
                       "WHERE name = 'big_a';")
    conn.close()
    broken = take_snapshot(src, tmp_path / "broken.sqlite").integrity
    assert broken != ["ok"] and all("big_a" in line for line in broken) and len(broken) == len(set(broken))


def test_a_started_snapshot_is_taken_once_and_dropped_when_not_taken(tmp_path, monkeypatch):
    writer = _make(tmp_path / "src.sqlite", rows=5)
    copies, real_take = [], snapshot._take_snapshot
    monkeypatch.setattr(snapshot, "_take_snapshot", lambda source, dest: copies.append(dest) or real_take(source, dest))
    dest, pending = tmp_path / "out" / "snap.sqlite", {}
    with started_snapshot(tmp_path / "src.sqlite", dest, pending):
        writer.execute("INSERT INTO t(v) VALUES ('after the start')")  # not in the copy begun before
        snap = take_snapshot(tmp_path / "src.sqlite", dest, pending)
        assert snap.ok and _count(dest) in (5, 6) and copies == [dest]
        again = take_snapshot(tmp_path / "src.sqlite", dest, pending)  # a second take copies anew
    assert _count(again.path) == 6 and len(copies) == 2

    with started_snapshot(tmp_path / "src.sqlite", dest, pending):
        pass  # not taken: waited for on exit, then forgotten
    assert len(copies) == 3 and not (dest.parent / (dest.name + ".partial")).exists() and pending == {}
    take_snapshot(tmp_path / "src.sqlite", dest, pending)
    assert len(copies) == 4


def test_a_started_snapshot_raises_its_error_where_it_is_taken(tmp_path):
    pending = {}
    with started_snapshot(tmp_path / "missing.sqlite", tmp_path / "snap.sqlite", pending):
        with pytest.raises(SourceError, match="missing.sqlite: SQLite source not found"):
            take_snapshot(tmp_path / "missing.sqlite", tmp_path / "snap.sqlite", pending)


def test_the_snapshot_records_which_committed_state_it_copied(tmp_path):
    import json

    _make(tmp_path / "journal.sqlite", rows=3).close()
    snap = take_snapshot(tmp_path / "journal.sqlite", tmp_path / "out" / "journal.sqlite")
    counter = int.from_bytes((tmp_path / "journal.sqlite").read_bytes()[24:28], "big")
    assert snap.source == str((tmp_path / "journal.sqlite").resolve()) and snap.taken_at.endswith("+00:00")
    assert snap.source_state["journal_mode"] == "delete" and snap.source_state["change_counter"] == counter > 0
    assert json.loads(snapshot.identity_path(snap.path).read_text()) == {
        "source": snap.source, "taken_at": snap.taken_at, "sha256": snap.sha256, "bytes": snap.bytes,
        "source_state": snap.source_state}

    writer = _make(tmp_path / "wal.sqlite", rows=5, wal=True)
    frames = snapshot._wal_frames(tmp_path / "wal.sqlite")
    snap = take_snapshot(tmp_path / "wal.sqlite", tmp_path / "out" / "wal.sqlite")
    assert snap.source_state["journal_mode"] == "wal" and snap.source_state["wal_frames"] == frames >= 6
    writer.execute("INSERT INTO t(v) VALUES ('after the snapshot')")
    assert snapshot._wal_frames(tmp_path / "wal.sqlite") > frames and _count(snap.path) == 5
    writer.close()


def test_a_source_pre_flight_names_what_is_wrong_in_one_line(tmp_path):
    _make(tmp_path / "ok.sqlite").close()
    snapshot.check_source(tmp_path / "ok.sqlite", ["t", "T"])  # SQLite table names are case-insensitive
    with pytest.raises(SourceError, match=r"ok.sqlite: no table 'Album' in the SQLite source, but the spec "
                                          r"migrates it \(and 1 more\)$"):
        snapshot.check_source(tmp_path / "ok.sqlite", ["t", "Album", "Artist"])
    (tmp_path / "empty.sqlite").write_bytes(b"")
    with pytest.raises(SourceError, match=r"empty.sqlite: empty file \(0 bytes\), not a SQLite database$"):
        snapshot.check_source(tmp_path / "empty.sqlite")
    (tmp_path / "short.sqlite").write_bytes((tmp_path / "ok.sqlite").read_bytes()[:60])
    with pytest.raises(SourceError, match=r"short.sqlite: truncated SQLite database \(60 bytes, shorter than its header\)$"):
        snapshot.check_source(tmp_path / "short.sqlite")
