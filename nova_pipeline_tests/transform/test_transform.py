"""transform: export → transform end to end on small SQLite files."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from nova_pipeline.transform import transform
from nova_pipeline.extract.export import ROWID, export_table
from nova_pipeline.core.spec import parse_spec
from nova_pipeline.core.staging import Staging
from nova_pipeline.transform.transform import QUARANTINE_SCHEMA, TransformError, transform_table

UTC = timezone.utc
COLUMNS = {
    "id": {"type": "bigint"},
    "name": {"type": "varchar(5)", "name": "label"},
    "created": {"type": "timestamptz", "declared": "DATETIME"},
    "active": {"type": "boolean"},
    "meta": {"type": "text"},
}
ROWS = [
    (1, "ann", "2024-01-02T03:04:05Z", 1, '{"a": 1}'),
    (2, "bob", 1704164645, "yes", "[]"),
    (3, "toolong", 1704164645000, 0, "{}"),
    (4, "dan", "2025-02-30", 1, "{}"),
    (5, "eve", "2024-01-02 03:04:05", 2, "nope"),
    (6, "fay", None, None, None),
]


def setup(tmp_path, on_bad_row="quarantine", rows=ROWS, **table):
    db = tmp_path / "s.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, created DATETIME, active BOOLEAN, meta)")
        conn.executemany("INSERT INTO users VALUES (?, ?, ?, ?, ?)", rows)
    spec = parse_spec({"source": {"sqlite": str(db)}, "on_bad_row": on_bad_row, "tables": {"users": {
        "primary_key": ["id"], "columns": COLUMNS, "json_columns": ["meta"], **table}}})
    st = Staging(str(tmp_path / "stg"))
    export_table(str(db), "users", list(COLUMNS), st, batch_rows=2)
    return spec, st


def clean(st: Staging) -> pa.Table:
    return pa.concat_tables(pq.read_table(f) for f in st.files("clean", "users"))


def quarantine(st: Staging) -> list[dict]:
    return pa.concat_tables(pq.read_table(f) for f in st.files("quarantine", "users")).to_pylist()


def test_end_to_end_quarantine(tmp_path):
    spec, st = setup(tmp_path)
    res = transform_table(spec, "users", st)
    assert (res.rows_in, res.rows_out, res.quarantined, res.nulled) == (6, 3, 3, 0)
    assert res.reasons == {"name: longer than 5 characters": 1, "created: invalid date": 1,
                           "active: not in the true/false vocabulary": 1, "meta: invalid JSON": 1}
    t = clean(st)
    assert t.schema.names == ["id", "label", "created", "active", "meta", ROWID]
    assert t.schema.types[:5] == [pa.int64(), pa.string(), pa.timestamp("us", "UTC"), pa.bool_(), pa.string()]
    ts = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert t.to_pylist() == [
        {"id": 1, "label": "ann", "created": ts, "active": True, "meta": '{"a":1}', ROWID: 1},
        {"id": 2, "label": "bob", "created": ts, "active": True, "meta": "[]", ROWID: 2},
        {"id": 6, "label": "fay", "created": None, "active": None, "meta": None, ROWID: 6},
    ]
    q = quarantine(st)
    assert pq.read_schema(st.files("quarantine", "users")[0]) == QUARANTINE_SCHEMA
    assert [(r["source_key"], r["column"], r["raw_value"], r["reason"]) for r in q] == [
        ('{"id":3}', "name", "toolong", "longer than 5 characters"),
        ('{"id":4}', "created", "2025-02-30", "invalid date"),
        ('{"id":5}', "active, meta", '{"active":"2","meta":"nope"}', "not in the true/false vocabulary; invalid JSON"),
    ]
    assert all(r["table"] == "users" for r in q)
    assert json.loads(q[0]["row"]) == {"id": 3, "name": "toolong", "created": 1704164645000, "active": 0,
                                       "meta": "{}", ROWID: 3}


def test_null_field_keeps_rows_and_records_nulled_values(tmp_path):
    spec, st = setup(tmp_path, "null_field")
    res = transform_table(spec, "users", st)
    assert (res.rows_in, res.rows_out, res.quarantined, res.nulled) == (6, 6, 0, 3)
    rows = {r["id"]: r for r in clean(st).to_pylist()}
    assert rows[3]["label"] is None and rows[4]["created"] is None and rows[5]["active"] is None
    assert rows[5]["meta"] is None and rows[5]["label"] == "eve"
    q = quarantine(st)
    assert sorted((r["source_key"], r["column"], r["reason"]) for r in q) == [
        ('{"id":3}', "name", "nulled: longer than 5 characters"),
        ('{"id":4}', "created", "nulled: invalid date"),
        ('{"id":5}', "active", "nulled: not in the true/false vocabulary"),
        ('{"id":5}', "meta", "nulled: invalid JSON"),
    ]


def test_null_field_still_quarantines_not_null_columns(tmp_path):
    columns = {**COLUMNS, "name": {"type": "varchar(5)", "name": "label", "nullable": False}}
    spec, st = setup(tmp_path, "null_field", columns=columns)
    res = transform_table(spec, "users", st)
    assert (res.rows_out, res.quarantined, res.nulled) == (5, 1, 2)
    assert [r["reason"] for r in quarantine(st) if not r["reason"].startswith("nulled:")] == [
        "longer than 5 characters"]


def test_fail_mode_names_table_column_key_and_reason(tmp_path):
    spec, st = setup(tmp_path, "fail")
    with pytest.raises(TransformError, match=r"users: column name: key \{\"id\":3\}: longer than 5 characters"):
        transform_table(spec, "users", st)
    assert st.files("clean", "users") == [] and st.files("quarantine", "users") == []


def test_text_primary_key_null_is_quarantined_and_blob_shown_as_hex(tmp_path):
    db = tmp_path / "s.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE k (code TEXT PRIMARY KEY, data BLOB, note TEXT)")
        conn.executemany("INSERT INTO k VALUES (?, ?, ?)", [("a", b"\x01", "x"), (None, b"\xff\x00", "y")])
        conn.execute("INSERT INTO k VALUES ('b', x'00', CAST(x'fe' AS TEXT))")
    spec = parse_spec({"source": {"sqlite": str(db)}, "tables": {"k": {"primary_key": ["code"], "columns": {
        "code": {"type": "text"}, "data": {"type": "text"}, "note": {"type": "text"}}}}})
    st = Staging(str(tmp_path / "stg"))
    export_table(str(db), "k", ["code", "data", "note"], st)
    res = transform_table(spec, "k", st)
    assert (res.rows_out, res.quarantined) == (1, 2)
    assert res.reasons == {"code: NULL in NOT NULL column": 1, "data: invalid UTF-8": 1,
                           "data: NUL character (PostgreSQL text cannot hold NUL)": 1, "note: invalid UTF-8": 1}
    q = pa.concat_tables(pq.read_table(f) for f in st.files("quarantine", "k")).to_pylist()
    assert [(r["source_key"], r["column"], r["raw_value"], r["reason"]) for r in q] == [
        ('{"code":null}', "code, data", '{"code":null,"data":"x\'ff00\'"}', "NULL in NOT NULL column; invalid UTF-8"),
        ('{"code":"b"}', "data, note", '{"data":"x\'00\'","note":"x\'fe\'"}',
         "NUL character (PostgreSQL text cannot hold NUL); invalid UTF-8"),
    ]
    assert json.loads(q[1]["row"])["note"] == "x'fe'"
    assert json.loads(q[0]["row"])["data"] == "x'ff00'"


def test_no_rows_and_missing_raw(tmp_path):
    spec, st = setup(tmp_path, rows=[])
    res = transform_table(spec, "users", st)
    assert (res.rows_in, res.rows_out, res.quarantined, res.files) == (0, 0, 0, 1)
    assert clean(st).num_rows == 0
    with pytest.raises(TransformError, match="no raw export"):
        transform_table(spec, "users", Staging(str(tmp_path / "empty")))


def test_failure_midway_leaves_no_parquet(tmp_path, monkeypatch):
    spec, st = setup(tmp_path)
    transform_table(spec, "users", st)
    real, calls = transform._transform_batch, []

    def failing(*args):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("killed")
        return real(*args)

    monkeypatch.setattr(transform, "_transform_batch", failing)
    with pytest.raises(RuntimeError, match="killed"):
        transform_table(spec, "users", st)
    assert st.files("clean", "users") == [] and st.files("quarantine", "users") == []
    stg = tmp_path / "stg"
    assert not list((stg / "clean").rglob("*.parquet")) and not list((stg / "clean").rglob("*.tmp"))
