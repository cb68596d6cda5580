"""Schema introspection, one-pass profiles and the proposed spec on small SQLite files."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing

import pytest

from nova_pipeline.extract import introspect
from nova_pipeline.core.identifiers import fit_identifier
from nova_pipeline.appschema.proposal import propose_spec
from nova_pipeline.extract.introspect import Column, profile_table, read_schema
from nova_pipeline.extract.snapshot import SourceError
from nova_pipeline.core.spec import dump_spec, parse_spec

LONG_TABLE = "t" * 70
LONG_COLUMN = "c" * 70


def _db(path, script: str, rows: dict[str, list[tuple]] | None = None):
    conn = sqlite3.connect(path)
    conn.executescript(script)
    for table, values in (rows or {}).items():
        marks = ", ".join("?" * len(values[0]))
        conn.executemany(f'INSERT INTO "{table}" VALUES ({marks})', values)
    conn.commit()
    conn.close()
    return path


@pytest.fixture
def app_db(tmp_path):
    """One file holding every case init must cope with."""
    return _db(tmp_path / "app.sqlite", f"""
        CREATE TABLE users(
            id INTEGER PRIMARY KEY,
            email VARCHAR(40) NOT NULL UNIQUE,
            "full name" TEXT DEFAULT 'n/a',
            "say ""hi""\" TEXT,
            "select" INTEGER DEFAULT (0),
            "ünïcødé" TEXT,
            active BOOLEAN DEFAULT 1,
            created_at DATETIME DEFAULT CURRENT_TIMESTAMP,
            seen DATETIME DEFAULT (strftime('%s','now')),
            profile JSON,
            avatar BLOB,
            misc,
            odd INTEGER DEFAULT (abs(random()) % 10)
        );
        CREATE TABLE order_lines(
            order_id INTEGER NOT NULL,
            line INTEGER NOT NULL,
            user_id INTEGER REFERENCES users ON DELETE CASCADE,
            email TEXT REFERENCES users(email),
            note TEXT REFERENCES users("full name"),
            qty INTEGER NOT NULL DEFAULT 1,
            price REAL,
            total REAL GENERATED ALWAYS AS (qty * price) STORED,
            PRIMARY KEY(order_id, line)
        ) WITHOUT ROWID;
        CREATE INDEX order_lines_user ON order_lines(user_id) WHERE user_id IS NOT NULL;
        CREATE INDEX order_lines_expr ON order_lines(lower(note));
        CREATE INDEX "idx ""quoted"" name" ON users("full name", "select");
        CREATE TABLE tags(code TEXT PRIMARY KEY, label TEXT);
        CREATE TABLE "{LONG_TABLE}"("{LONG_COLUMN}1" INTEGER, "{LONG_COLUMN}2" INTEGER);
        CREATE VIEW active_users AS SELECT * FROM users WHERE active;
        CREATE TRIGGER users_touch AFTER UPDATE ON users BEGIN SELECT 1; END;
        CREATE VIRTUAL TABLE docs USING fts5(body);
        INSERT INTO docs VALUES ('hello world');
        CREATE TABLE counters(id INTEGER PRIMARY KEY AUTOINCREMENT, n);
    """, {
        "users": [
            (1, "a@x.io", "Ann", "hi", 1, "ß", 1, "2024-01-02 03:04:05", 1700000000, '{"a": 1}', b"\x00\x01", 1, 1),
            (2, "b@x.io", "Bob", None, 2, None, 0, "2024-01-03T00:00:00Z", 1700000001, "[1, 2]", None, "two", 2),
            (3, "c@x.io", "Cy", None, 3, None, "yes", 1700000000, "2024-01-01", "not json", b"\xff", 3.5, 3),
        ],
        "order_lines": [(1, 1, 1, "a@x.io", "Ann", 2, 1.5), (1, 2, 2, "b@x.io", None, 1, 2.0)],
        "tags": [("a", "A"), (None, "no key"), (None, "no key either")],
        LONG_TABLE: [(1, 2)],
    })


def test_read_schema_lists_everything_and_skips_with_reasons(app_db):
    with sqlite3.connect(app_db) as conn:
        schema = read_schema(conn)
    conn.close()
    # The FTS5 table keeps its own text: it is read as a table (its rows migrate); its shadow tables are skipped.
    assert [t.name for t in schema.tables] == ["users", "order_lines", "tags", LONG_TABLE, "docs", "counters"]
    assert [(v.name, v.module) for v in schema.virtual_tables] == [("docs", "fts5")]
    assert [(f.name, f.columns, f.content) for f in schema.fts] == [("docs", ["body"], None)]
    skipped = {s.name: s.reason for s in schema.skipped}
    assert set(skipped) == {"docs_data", "docs_idx", "docs_content", "docs_docsize", "docs_config", "sqlite_sequence"}
    assert "shadow table of virtual table docs" in skipped["docs_idx"]
    assert skipped["sqlite_sequence"] == "SQLite internal table"
    assert [v.name for v in schema.views] == ["active_users"]
    assert [(t.name, t.table) for t in schema.triggers] == [("users_touch", "users")]

    users, lines = schema.tables[0], schema.tables[1]
    assert users.columns[0] == Column("id", "INTEGER", False, None, 1, None)
    assert users.columns[2] == Column("full name", "TEXT", False, "'n/a'", 0, None)
    assert users.columns[3].name == 'say "hi"'
    assert users.row_count == 3 and not users.without_rowid
    assert lines.without_rowid and lines.primary_key == ["order_id", "line"]
    assert lines.columns[-1].generated == "stored"
    fk = {tuple(f.columns): f for f in lines.foreign_keys}
    assert fk[("user_id",)].referenced_columns is None and fk[("user_id",)].on_delete == "cascade"
    assert fk[("email",)].referenced_columns == ["email"]
    indexes = {i.name: i for i in lines.indexes}
    assert indexes["order_lines_user"].where == "user_id IS NOT NULL"
    assert indexes["order_lines_expr"].columns == [None]
    assert {i.origin for i in users.indexes} == {"u", "c"}


def test_profile_counts_storage_classes_and_value_tests(tmp_path):
    path = _db(tmp_path / "p.sqlite", """
        CREATE TABLE p(n INTEGER, d DATETIME, j JSON, b BOOLEAN, x, v VARCHAR(3), m NUMERIC(5,2));
    """, {"p": [
        (1, "2024-01-01", '{"k": 1}', 1, 1, "abc", 1.25),
        ("42", "2024-01-01 10:00:00", "nope", "yes", 2.5, "ab", 1.255),
        ("4x", 1700000000, None, 0, "t", "a\x00b", 3),
        (2.0, 1700000000000, "[1]", 7, b"\x00" * 16, "abcd", None),
        (None, "soon", "1", "maybe", None, None, 10),
    ]})
    conn = sqlite3.connect(path)
    schema = read_schema(conn)
    prof = profile_table(conn, "p", schema.tables[0].columns)
    conn.close()
    assert list(prof) == list("ndjbxvm")
    n, d, j, b, x, v, m = (prof[c] for c in "ndjbxvm")
    assert n.storage() == {"null": 1, "integer": 3, "real": 0, "text": 1, "blob": 0}  # "42" → 42 and 2.0 → 2 by affinity
    assert (n.text_integers, n.reals_integral) == (0, 0)
    assert (d.texts, d.integers, d.text_dates, d.text_datetimes, d.epoch_seconds, d.epoch_millis) == (3, 2, 1, 1, 1, 1)
    assert (j.texts, j.integers, j.nulls, j.text_json) == (3, 1, 1, 2)  # JSON has numeric affinity: "1" → 1
    assert (b.integers, b.ints_01, b.texts, b.text_booleans) == (3, 2, 2, 1)
    assert x.storage() == {"null": 1, "integer": 1, "real": 1, "text": 1, "blob": 1}
    assert (x.num_min, x.num_max) == (1, None)  # text and blobs sort above numbers: no numeric maximum
    assert (v.text_nul, v.max_text_chars, v.max_text_bytes) == (1, 4, 4)
    assert (m.over_scale, m.num_max) == (1, 10)


def test_rowid_alias_is_known_without_a_scan(tmp_path):
    path = _db(tmp_path / "r.sqlite", """
        CREATE TABLE a(id INTEGER PRIMARY KEY, v);
        CREATE TABLE b(id INTEGER PRIMARY KEY DESC, v);
        CREATE TABLE c(id INT PRIMARY KEY, v);
    """, {"a": [(1, "x"), (2, None)], "b": [("k", 1)], "c": [(1, 2)]})
    conn = sqlite3.connect(path)
    a, b, c = read_schema(conn).tables
    assert (a.rowid_alias, b.rowid_alias, c.rowid_alias) == ("id", None, None)
    prof = profile_table(conn, "a", a.columns, rowid_alias=a.rowid_alias)
    assert list(prof) == ["id", "v"] and prof["id"].integers == 2 and prof["v"].nulls == 1
    assert profile_table(conn, "b", b.columns, rowid_alias=b.rowid_alias)["id"].texts == 1  # DESC: not an alias
    conn.close()


def test_packed_counters_do_not_carry_when_every_row_matches(tmp_path):
    # 7 rows → 3-bit fields: a count of 7 fills its field exactly.
    path = _db(tmp_path / "full.sqlite", "CREATE TABLE f(d DATETIME);", {"f": [("2024-01-02",)] * 7})
    conn = sqlite3.connect(path)
    prof = profile_table(conn, "f", read_schema(conn).tables[0].columns)["d"]
    conn.close()
    assert (prof.texts, prof.text_dates, prof.text_datetimes, prof.nulls, prof.integers) == (7, 7, 0, 0, 0)


def test_proposed_spec_is_valid_and_faithful(app_db):
    spec, report = propose_spec(app_db, postgres_schema="core")
    parsed = parse_spec(spec)
    assert parse_spec(__import__("yaml").safe_load(dump_spec(parsed))) == parsed
    assert spec["source"] == {"sqlite": str(app_db)}
    assert spec["targets"] == {"postgres": {"url": "env:NOVA_POSTGRES_URL", "schema": "core"}}
    assert list(spec["tables"]) == ["users", "order_lines", "tags", LONG_TABLE, "docs", "counters"]
    assert spec["tables"]["docs"]["fts"] == [{"columns": ["body"], "config": "simple"}]

    users = spec["tables"]["users"]
    assert users["primary_key"] == ["id"]
    cols = users["columns"]
    assert list(cols) == ["id", "email", "full name", 'say "hi"', "select", "ünïcødé", "active", "created_at",
                          "seen", "profile", "avatar", "misc", "odd"]
    assert cols["id"] == {"type": "bigint", "declared": "INTEGER", "nullable": False, "identity": True}
    assert cols["email"] == {"type": "varchar(40)", "declared": "VARCHAR(40)", "nullable": False}
    assert cols["full name"]["default"] == "'n/a'"
    assert cols["select"] == {"type": "bigint", "declared": "INTEGER", "nullable": True, "default": "0"}
    assert cols["active"]["type"] == "boolean" and cols["active"]["default"] == "TRUE"
    assert cols["created_at"]["type"] == "timestamptz" and cols["created_at"]["default"] == "CURRENT_TIMESTAMP"
    assert cols["created_at"]["parse"] == ["iso8601", "unix_seconds"]
    assert cols["seen"]["default"] == "now()"
    assert cols["profile"]["type"] == "jsonb"
    assert cols["avatar"]["type"] == "bytea"
    assert cols["misc"]["type"] == "text"  # integer, text, real mixed
    assert "default" not in cols["odd"]
    assert users["indexes"] == [
        {"columns": ["email"], "unique": True},  # the UNIQUE constraint; the PK's index is implied
        {"columns": ["full name", "select"], "unique": False, "name": 'idx "quoted" name'},
    ]

    lines = spec["tables"]["order_lines"]
    assert lines["primary_key"] == ["order_id", "line"]
    assert lines["columns"]["total"]["type"] == "double precision"
    assert lines["foreign_keys"] == [
        {"columns": ["email"], "references": "users", "referenced_columns": ["email"], "on_delete": "no action"},
        {"columns": ["user_id"], "references": "users", "referenced_columns": ["id"], "on_delete": "cascade"},
    ]
    assert lines["indexes"] == [
        {"columns": ["user_id"], "unique": False, "name": "order_lines_user", "where": 'NOT "user_id" IS NULL'},
        {"expressions": ['LOWER("note")'], "unique": False, "name": "order_lines_expr"},
    ]

    long_table = spec["tables"][LONG_TABLE]
    assert long_table["table"] == fit_identifier(LONG_TABLE)
    names = [c["name"] for c in long_table["columns"].values()]
    assert names == [fit_identifier(LONG_COLUMN + "1"), fit_identifier(LONG_COLUMN + "2")]
    assert len(set(names)) == 2 and all(len(n.encode()) <= 63 for n in names)
    assert spec["tables"]["tags"]["primary_key"] == ["code"]
    assert spec["tables"]["tags"]["columns"]["code"]["nullable"] is False
    assert "docs_data" not in spec["tables"] and "sqlite_sequence" not in spec["tables"]


def test_type_report_explains_every_choice_and_omission(app_db):
    _, report = propose_spec(app_db)
    warnings = "\n".join(report.warnings)
    assert "active_users" not in warnings and "docs" not in warnings  # the view and the FTS table are carried over
    assert "trigger users_touch not carried over: body statement is not UPDATE, INSERT or DELETE: SELECT 1" in warnings
    assert {(o["kind"], o["name"], o["reason"] is None) for o in report.app_objects} == {
        ("fts", "docs", True), ("view", "active_users", True), ("trigger", "users_touch", False)}
    assert "users.odd: default abs(random()) % 10 has no PostgreSQL bigint equivalent; dropped" in warnings
    assert "order_lines: foreign key (note) → users dropped: PostgreSQL needs the referenced columns" in warnings
    assert "order_lines_expr" not in warnings  # an expression index is translated, not dropped
    assert f"table {LONG_TABLE}: renamed to {fit_identifier(LONG_TABLE)}" in warnings
    assert f"{LONG_TABLE}.{LONG_COLUMN}1: renamed to {fit_identifier(LONG_COLUMN + '1')}" in warnings
    assert "tags.code: 2 rows have a NULL primary key and will be quarantined" in warnings

    tables = {t.table: t for t in report.tables}
    assert tables["tags"].columns[0].rows_to_quarantine == 2
    assert tables["order_lines"].without_rowid
    users = {c.column: c for c in tables["users"].columns}
    assert users["misc"].storage == {"null": 0, "integer": 1, "real": 1, "text": 1, "blob": 0}
    assert (users["misc"].pg_type, users["misc"].bson_type, users["misc"].rows_needing_cast) == ("text", "string", 2)
    assert (users["profile"].rows_to_quarantine, users["created_at"].rows_needing_cast) == (1, 3)
    assert (users["active"].pg_type, users["active"].rows_needing_cast) == ("boolean", 1)
    assert users["created_at"].bson_type == "date" and users["avatar"].bson_type == "binData"
    assert "generated (stored)" in {c.column: c for c in tables["order_lines"].columns}["total"].note

    as_dict = json.loads(json.dumps(report.to_dict()))
    assert as_dict["views"] == ["active_users"] and as_dict["triggers"] == ["users_touch"]
    assert {s["name"] for s in as_dict["skipped"]} >= {"docs_data", "docs_config"}
    md = report.to_markdown()
    assert "| say \"hi\" | TEXT |" in md and "## order_lines (2 rows)" in md and "WITHOUT ROWID" in md
    assert "## Warnings" in md and "active_users" in md


def test_tables_over_postgres_column_limit_are_proposed_and_flagged(tmp_path):
    columns = ", ".join(f"c{i} INTEGER" for i in range(1601))
    path = _db(tmp_path / "wide.sqlite", f"CREATE TABLE wide(id INTEGER PRIMARY KEY, {columns});")
    spec, report = propose_spec(path)
    parse_spec(spec)
    assert len(spec["tables"]["wide"]["columns"]) == 1602
    assert report.tables[0].will_fail == "1602 columns; PostgreSQL tables hold at most 1600"
    assert any("wide: 1602 columns" in w and "will fail" in w for w in report.warnings)
    assert "**Will fail:**" in report.to_markdown()


def test_foreign_keys_to_unmigrated_or_mismatched_parents_are_dropped(tmp_path):
    path = _db(tmp_path / "fk.sqlite", """
        CREATE TABLE parent(id INTEGER PRIMARY KEY, code TEXT UNIQUE);
        CREATE TABLE loose(parent_code);
        CREATE TABLE child(
            pid INTEGER REFERENCES parent(id) ON DELETE SET NULL,
            ghost INTEGER REFERENCES nowhere(id),
            code TEXT REFERENCES PARENT(CODE),
            odd TEXT REFERENCES parent(id)
        );
    """, {"child": [(1, 1, "a", "x")]})
    spec, report = propose_spec(path)
    parse_spec(spec)
    assert spec["tables"]["child"]["foreign_keys"] == [
        {"columns": ["code"], "references": "parent", "referenced_columns": ["code"], "on_delete": "no action"},
        {"columns": ["pid"], "references": "parent", "referenced_columns": ["id"], "on_delete": "set null"},
    ]
    warnings = "\n".join(report.warnings)
    assert "child: foreign key (ghost) → nowhere dropped: the referenced table is not migrated" in warnings
    assert "child: foreign key (odd) → parent dropped: odd is text but parent.id is bigint" in warnings
    assert spec["tables"]["loose"]["primary_key"] == []


def test_missing_source_is_a_one_line_error(tmp_path):
    with pytest.raises(SourceError, match="missing.sqlite: SQLite source not found"):
        propose_spec(tmp_path / "missing.sqlite")


def test_storage_counts_are_the_profiles_storage_classes(tmp_path):
    db = tmp_path / "s.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, a, b REAL, c TEXT)")
        conn.executemany("INSERT INTO t (a, b, c) VALUES (?, ?, ?)",
                         [(1, 1.5, "x"), ("two", None, b"\x00"), (3.5, 2, None), (None, "n/a", "y"), (b"b", 4.0, 5)])
    with closing(sqlite3.connect(db)) as conn:
        table = introspect.read_schema(conn).tables[0]
        full = introspect.profile_table(conn, "t", table.columns, rowid_alias=table.rowid_alias)
        counts = introspect.storage_counts(conn, "t", [c.name for c in table.columns], rowid_alias=table.rowid_alias)
    assert counts == {name: p.storage() for name, p in full.items()}
    assert counts["a"] == {"null": 1, "integer": 1, "real": 1, "text": 1, "blob": 1}
