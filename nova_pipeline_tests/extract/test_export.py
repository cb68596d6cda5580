"""export: SQLite → raw Parquet per the raw contract."""

from __future__ import annotations

import sqlite3

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nova_pipeline.extract import export
from nova_pipeline.extract.export import MIXED_TYPE, ROWID, ExportError, export_table
from nova_pipeline.core.scan_cache import FactsStore
from nova_pipeline.core.staging import Staging


def make_db(path, *statements, rows=()):
    with sqlite3.connect(path) as conn:
        for s in statements:
            conn.execute(s)
        for sql, params in rows:
            conn.executemany(sql, params)
    return str(path)


def read(staging: Staging, table: str, partition: str | None = None) -> pa.Table:
    files = staging.files("raw", table, partition)
    return pa.concat_tables(pq.read_table(f) for f in files)


def test_native_and_mixed_columns(tmp_path):
    db = make_db(tmp_path / "s.sqlite", "CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, m, n)", rows=[(
        "INSERT INTO t VALUES (?, ?, ?, ?, ?, ?)",
        [(1, 0.1, "é", b"\x00\x01", 5, None), (None, 1e308, None, b"", 2.5, None), (2**62, -0.0, "", None, "x", None),
         (3, None, "z", None, b"\xff", None), (4, None, "w", None, None, None)])])
    st = Staging(str(tmp_path / "stg"))
    res = export_table(db, "t", ["i", "r", "s", "b", "m", "n"], st)
    assert (res.rows, res.files) == (5, 1) and res.bytes > 0
    t = read(st, "t")
    assert t.schema.types == [pa.int64(), pa.float64(), pa.binary(), pa.binary(), MIXED_TYPE, pa.null(), pa.int64()]
    assert t.schema.names[-1] == ROWID
    assert [t.schema.field(c).metadata[b"nova.storage"] for c in "irsbmn"] == [
        b"integer", b"real", b"text", b"blob", b"mixed", b"null"]
    assert t.column("i").to_pylist() == [1, None, 2**62, 3, 4]
    assert t.column("r").to_pylist() == [0.1, 1e308, -0.0, None, None]
    assert t.column("s").to_pylist() == ["é".encode(), None, b"", b"z", b"w"]
    assert t.column("b").to_pylist() == [b"\x00\x01", b"", None, None, None]
    assert t.column("m").to_pylist() == [
        {"t": "integer", "i": 5, "r": None, "b": None}, {"t": "real", "i": None, "r": 2.5, "b": None},
        {"t": "text", "i": None, "r": None, "b": b"x"}, {"t": "blob", "i": None, "r": None, "b": b"\xff"}, None]
    assert t.column(ROWID).to_pylist() == [1, 2, 3, 4, 5]


def test_odd_identifiers_and_shadowed_rowid(tmp_path):
    db = make_db(tmp_path / "s.sqlite", 'CREATE TABLE "my ""odd"" table" ("select" INTEGER, "a b" TEXT, rowid TEXT)',
                 rows=[('INSERT INTO "my ""odd"" table" VALUES (?, ?, ?)', [(7, "x", "r1"), (8, "y", "r2")])])
    st = Staging(str(tmp_path / "stg"))
    export_table(db, 'my "odd" table', ["select", "a b", "rowid"], st)
    t = read(st, 'my "odd" table')
    assert t.column("select").to_pylist() == [7, 8]
    assert t.column("rowid").to_pylist() == [b"r1", b"r2"]
    assert t.column(ROWID).to_pylist() == [1, 2]


def test_invalid_utf8_text_is_kept_as_bytes(tmp_path):
    db = make_db(tmp_path / "s.sqlite", "CREATE TABLE t (s TEXT)")
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO t VALUES (CAST(x'ff41' AS TEXT)), ('ok')")
        assert conn.execute("SELECT typeof(s) FROM t").fetchall() == [("text",), ("text",)]
    st = Staging(str(tmp_path / "stg"))
    export_table(db, "t", ["s"], st)
    assert read(st, "t").column("s").to_pylist() == [b"\xffA", b"ok"]


def test_without_rowid_numbers_rows_in_pk_order(tmp_path):
    db = make_db(tmp_path / "s.sqlite", "CREATE TABLE w (k TEXT, j INTEGER, v, PRIMARY KEY (j, k)) WITHOUT ROWID",
                 rows=[("INSERT INTO w VALUES (?, ?, ?)", [("b", 2, 1), ("a", 2, 2), ("z", 1, 3)])])
    st = Staging(str(tmp_path / "stg"))
    export_table(db, "w", ["k", "j", "v"], st)
    t = read(st, "w").sort_by(ROWID)
    assert t.column("k").to_pylist() == [b"z", b"a", b"b"] and t.column(ROWID).to_pylist() == [1, 2, 3]
    # A window keeps the numbers of the full table.
    export_table(db, "w", ["k", "j", "v"], st, partition="p", where=('"j" = ?', (2,)))
    part = read(st, "w", "p").sort_by(ROWID)
    assert part.column(ROWID).to_pylist() == [2, 3]


def test_empty_table_writes_one_empty_file(tmp_path):
    db = make_db(tmp_path / "s.sqlite", "CREATE TABLE e (a INTEGER, b TEXT)")
    st = Staging(str(tmp_path / "stg"))
    res = export_table(db, "e", ["a", "b"], st)
    assert (res.rows, res.files) == (0, 1)
    t = read(st, "e")
    assert t.num_rows == 0 and t.schema.names == ["a", "b", ROWID]


def test_multi_file_export_and_reexport_replaces(tmp_path):
    db = make_db(tmp_path / "s.sqlite", "CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)",
                 rows=[("INSERT INTO big VALUES (?, ?)", [(i, f"v{i}") for i in range(1, 1001)])])
    st = Staging(str(tmp_path / "stg"))
    res = export_table(db, "big", ["id", "v"], st, batch_rows=100, file_rows=300)
    assert (res.rows, res.files) == (1000, 4)
    files = st.files("raw", "big")
    assert [pq.ParquetFile(f).metadata.num_rows for f in files] == [300, 300, 300, 100]
    assert pq.ParquetFile(files[0]).metadata.num_row_groups == 3
    assert read(st, "big").column("id").to_pylist() == list(range(1, 1001))
    res = export_table(db, "big", ["id", "v"], st, where=("id <= ?", (10,)))
    assert (res.rows, res.files) == (10, 1) and len(st.files("raw", "big")) == 1


def test_failure_midway_leaves_no_parquet(tmp_path, monkeypatch):
    db = make_db(tmp_path / "s.sqlite", "CREATE TABLE big (id INTEGER PRIMARY KEY)",
                 rows=[("INSERT INTO big VALUES (?)", [(i,) for i in range(1, 501)])])
    st = Staging(str(tmp_path / "stg"))
    export_table(db, "big", ["id"], st)
    real, calls = export._to_raw, []

    def failing(batch, schema, table):
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("disk full")
        return real(batch, schema, table)

    monkeypatch.setattr(export, "_to_raw", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        export_table(db, "big", ["id"], st, batch_rows=100, file_rows=100)
    assert st.files("raw", "big") == []
    assert not list((tmp_path / "stg").rglob("*.parquet")) and not list((tmp_path / "stg").rglob("*.tmp"))


def test_unknown_table_and_reserved_column(tmp_path):
    db = make_db(tmp_path / "s.sqlite", "CREATE TABLE t (_nova_rowid INTEGER)")
    st = Staging(str(tmp_path / "stg"))
    with pytest.raises(ExportError, match="nope: no such table"):
        export_table(db, "nope", ["a"], st)
    with pytest.raises(ExportError, match="reserves"):
        export_table(db, "t", ["_nova_rowid"], st)


def test_storage_classes_of_an_unchanged_file_are_scanned_once(tmp_path, monkeypatch):
    db = str(tmp_path / "s.sqlite")
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (a, b)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(1, "x"), (2, 3)])
    scans = []
    real_scan = export.storage_classes
    monkeypatch.setattr(export, "storage_classes", lambda *a: scans.append(a[1]) or real_scan(*a))

    stg = Staging(str(tmp_path / "stg"))
    facts = FactsStore(stg)
    export.remember_storage_classes(db, "t", {"a": {"integer"}, "b": {"integer", "text"}}, facts)  # as the profile does
    assert export.table_storage_classes(db, "t", ["b"], FactsStore(stg)) == {"b": {"integer", "text"}} and scans == []
    export_table(db, "t", ["a", "b"], stg, facts=facts)  # the whole-table export reuses them too
    assert scans == [] and stg.row_count("raw", "t") == 2

    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO t VALUES (2.5, NULL)")  # the file changed: scanned again
    assert export.table_storage_classes(db, "t", ["a", "b"], facts) == {"a": {"integer", "real"}, "b": {"integer", "text"}}
    assert scans == [["a", "b"]]
    assert export.table_storage_classes(db, "t", ["a"], facts) == {"a": {"integer", "real"}} and len(scans) == 1
