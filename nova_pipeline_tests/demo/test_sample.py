"""The Nova sample generator and the Nova sample spec."""

from __future__ import annotations

import hashlib
import importlib.util
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from nova_pipeline.demo import sample
from nova_pipeline.core.spec import load_spec

SPEC = Path(__file__).resolve().parents[2] / "data" / "nova.spec.yaml"


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("nova") / "nova.sqlite"
    sample.generate(path, scale=1.0, seed=7)
    return path


@pytest.fixture
def db(demo_db):
    conn = sqlite3.connect(demo_db)
    yield conn
    conn.close()


def _tables(conn) -> list[str]:
    return [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]


def _content_hash(path: Path) -> str:
    """sha256 over every table's rows in key order, storage classes included."""
    digest = hashlib.sha256()
    with sqlite3.connect(path) as conn:
        for table in _tables(conn):
            digest.update(table.encode())
            for row in conn.execute(f'SELECT * FROM "{table}" ORDER BY 1, 2'):
                digest.update(repr([(type(v).__name__, v) for v in row]).encode())
    return digest.hexdigest()


def test_rows_for_gives_the_demo_and_benchmark_shapes():
    demo, bench = sample.rows_for(1), sample.rows_for(50)
    assert 40_000 <= sum(demo.values()) <= 45_000
    assert bench["drone_telemetry"] == 1_000_000
    assert (bench["audit_logs"], bench["system_logs"], bench["notifications"], bench["users"]) == (
        500_000, 300_000, 200_000, 50_000)
    assert 2_150_000 <= sum(bench.values()) <= 2_170_000
    assert bench["mission_waypoints"] == bench["missions"] * sample.WAYPOINTS_PER_MISSION
    with pytest.raises(ValueError, match="scale must be > 0"):
        sample.rows_for(0)


def test_same_seed_same_content_other_seed_other_content(tmp_path):
    a, b, c = tmp_path / "a.sqlite", tmp_path / "b.sqlite", tmp_path / "c.sqlite"
    day = date(2026, 3, 1)
    sample.generate(a, scale=0.1, seed=7, anchor=day)
    sample.generate(b, scale=0.1, seed=7, anchor=day)
    sample.generate(c, scale=0.1, seed=8, anchor=day)
    assert _content_hash(a) == _content_hash(b)
    assert _content_hash(a) != _content_hash(c)


def test_row_counts_match_rows_for(db, tmp_path):
    expected = sample.rows_for(1.0)
    assert {t: db.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in _tables(db)} == expected
    assert sample.generate(tmp_path / "small.sqlite", scale=0.01) == sample.rows_for(0.01)


def test_foreign_keys_declared_and_consistent(db):
    assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert db.execute("PRAGMA foreign_key_check").fetchall() == []
    assert ("users", "manager_id", "id") in [(r[2], r[3], r[4]) for r in db.execute("PRAGMA foreign_key_list(users)")]
    assert [r[1] for r in db.execute("PRAGMA table_info(user_roles)") if r[5]] == ["user_id", "role_id"]
    assert db.execute("SELECT count(*) FROM users WHERE manager_id IS NOT NULL").fetchone()[0] > 500
    unique = {r[1] for r in db.execute("PRAGMA index_list(users)") if r[2]}
    assert {"idx_users_email", "idx_users_uuid"} <= unique


def test_timestamps_mix_text_and_epoch_forms(db):
    kinds = dict(db.execute("SELECT typeof(created_at), count(*) FROM users GROUP BY 1"))
    assert kinds["text"] > 500 and kinds["integer"] > 50
    seconds, millis = db.execute(
        "SELECT sum(created_at < 1e11), sum(created_at >= 1e11) FROM users WHERE typeof(created_at) = 'integer'").fetchone()
    assert seconds > 0 and millis > 0
    with_t, without_t = db.execute(
        "SELECT sum(created_at LIKE '%T%Z'), sum(created_at NOT LIKE '%T%') FROM users "
        "WHERE typeof(created_at) = 'text'").fetchone()
    assert with_t > 0 and without_t > 0


def test_telemetry_spans_thirty_days_across_a_month_boundary(db):
    days = [r[0] for r in db.execute(
        "SELECT DISTINCT CASE typeof(recorded_at) WHEN 'integer' THEN date(recorded_at / 1000, 'unixepoch') "
        "ELSE substr(recorded_at, 1, 10) END AS day FROM drone_telemetry ORDER BY day")]
    assert days[0] == "2024-01-01" and len(days) == sample.TELEMETRY_DAYS >= 30
    assert days[-1].startswith("2024-02")
    # Full double precision: coordinates are not rounded to a few decimals.
    assert db.execute("SELECT avg(latitude != round(latitude, 9)) FROM drone_telemetry").fetchone()[0] > 0.99


def test_booleans_blobs_unicode_json_and_nulls(db):
    assert dict(db.execute("SELECT typeof(is_admin), count(*) FROM users GROUP BY 1")).keys() == {"integer", "text"}
    assert {r[0] for r in db.execute("SELECT is_admin FROM users WHERE typeof(is_admin) = 'text'")} <= {"true", "false"}
    assert db.execute("SELECT typeof(public_key), typeof(credential_id), length(credential_id) FROM passkeys").fetchone() == (
        "blob", "blob", 32)
    names = [r[0] for r in db.execute("SELECT name FROM users")]
    assert any(any("\u4e00" <= ch <= "\u9fff" for ch in n) for n in names)  # CJK
    assert any(any(ord(ch) > 0xFFFF for ch in n) for n in names)  # emoji
    assert any("é" in n or "ø" in n for n in names)
    assert db.execute("SELECT count(*) FROM users WHERE settings IS NOT NULL AND NOT json_valid(settings)").fetchone() == (0,)
    assert db.execute("SELECT count(*) FROM users WHERE last_login IS NULL").fetchone()[0] > 100
    assert "WITHOUT ROWID" in db.execute("SELECT sql FROM sqlite_master WHERE name = 'role_permissions'").fetchone()[0]


def test_exactly_the_deliberate_bad_rows(db):
    for table, column, row_id, value in sample.BAD_VALUES:
        assert db.execute(f'SELECT "{column}", typeof("{column}") FROM "{table}" WHERE id = ?', (row_id,)).fetchone() == (
            value, "text")
    assert db.execute("SELECT count(*) FROM notifications WHERE typeof(priority) != 'integer'").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM notifications WHERE created_at LIKE '%-02-30%'").fetchone() == (1,)
    assert db.execute("SELECT count(*) FROM audit_logs WHERE NOT json_valid(details)").fetchone() == (1,)
    spec = load_spec(SPEC)
    assert {t: s.max_quarantined_rows for t, s in spec.tables.items() if s.max_quarantined_rows} == sample.BAD_ROWS


def test_spec_covers_exactly_the_database(db):
    spec = load_spec(SPEC)
    assert spec.resolve(spec.source.sqlite) == SPEC.parent / "nova.sqlite"
    assert sorted(spec.tables) == _tables(db)
    for table, t in spec.tables.items():
        info = db.execute(f'PRAGMA table_info("{table}")').fetchall()
        assert list(t.columns) == [r[1] for r in info], table
        assert [c.declared for c in t.columns.values()] == [r[2] for r in info], table
        for fk in t.foreign_keys:
            assert set(fk.referenced_columns) <= set(spec.tables[fk.references].columns), (table, fk)
    ttl = {t: (s.ttl.field, s.ttl.days) for t, s in spec.tables.items() if s.ttl}
    assert ttl == {"audit_logs": ("created_at", 90), "system_logs": ("created_at", 30), "user_activity": ("created_at", 30),
                   "performance_metrics": ("recorded_at", 7), "error_logs": ("created_at", 90),
                   "api_usage": ("created_at", 30), "search_analytics": ("created_at", 90)}
    assert all(spec.tables[t].target == "mongo" for t in ttl)
    telemetry = spec.tables["drone_telemetry"]
    assert telemetry.pg_schema_table == ("telemetry", "drone_telemetry")
    partition = telemetry.partition
    assert (partition.column, partition.grain, partition.physical) == ("recorded_at", "day", "month")


def test_smoke_test_expectations_match_the_source(db, demo_db):
    """PostgreSQL smoke SQL runs unchanged on SQLite with the file attached as `core` and `telemetry`;
    the Mongo ones are recomputed, leaving out the quarantined audit row."""
    db.execute("ATTACH DATABASE ? AS core", (str(demo_db),))
    db.execute("ATTACH DATABASE ? AS telemetry", (str(demo_db),))
    tests = load_spec(SPEC).smoke_tests
    assert {t.target for t in tests} == {"postgres", "mongo"}
    for test in tests:
        if test.target == "postgres":
            rows = db.execute(test.sql).fetchall()
            assert (len(rows), rows[0][0]) == (test.expect_rows, test.expect_value), test.name
        elif test.find is not None:
            (action,) = test.find.values()
            assert db.execute("SELECT count(*) FROM audit_logs WHERE action = ? AND json_valid(details)",
                              (action,)).fetchone() == (test.expect_rows,), test.name
        else:
            assert db.execute("SELECT count(DISTINCT action) FROM audit_logs WHERE json_valid(details)").fetchone() == (
                test.expect_rows,), test.name
        assert test.max_ms is not None, test.name


def test_command_line_wrapper(tmp_path, capsys):
    loader = importlib.util.spec_from_file_location("generate_nova", SPEC.parent / "generate_nova.py")
    module = importlib.util.module_from_spec(loader)
    loader.loader.exec_module(module)
    out = tmp_path / "cli.sqlite"
    assert module.main(["--out", str(out), "--scale", "0.02", "--seed", "3"]) == 0
    assert f"{sum(sample.rows_for(0.02).values()):,} rows" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        module.main(["--scale", "-1"])
