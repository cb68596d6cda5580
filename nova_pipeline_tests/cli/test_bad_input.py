"""Messy SQLite files through the real path (init → migrate --report on a real PostgreSQL).

For every bad-input class each row is either loaded with a faithful value (read
back from PostgreSQL) or quarantined with table, key, column, raw value and
reason (quarantine Parquet and nova_meta.nova_quarantine), or its table is
reported failed with a reason; the report reconciles every row.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from nova_pipeline.core import identifiers
from nova_pipeline.cli.main import main
from nova_pipeline.orchestration.defs.assets import staging_of
from nova_pipeline.extract.export import quote
from nova_pipeline_tests import messy_db as m
from nova_pipeline_tests.cli_runs import init_and_migrate

SQL_RAW = {"9e999": "inf", f"CAST(x'{m.INVALID_UTF8.hex()}' AS TEXT)": f"x'{m.INVALID_UTF8.hex()}'"}


def new_database(admin_url: str) -> str:
    name = f"bad_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.replace("/postgres?", f"/{name}?", 1)


def build_and_migrate(folder, build, pg_url, edit=None):
    """Build a database with `build`, then `init` (optionally edited) and `migrate --report` it."""
    return init_and_migrate(folder, build(folder / "src.sqlite"), pg_url, edit)


def quarantine_rows(spec, table: str) -> list[dict]:
    """The quarantine Parquet of a table: staging/quarantine/<table>/*.parquet."""
    files = sorted(Path(staging_of(spec).dir("quarantine", table)).glob("*.parquet"))
    return [r for f in files for r in pq.read_table(f).to_pylist()]


def raw_text(value) -> str:
    """What the quarantine's raw_value must say for a stored value."""
    if isinstance(value, tuple):
        return SQL_RAW[value[1]]
    if isinstance(value, bytes):
        return f"x'{value.hex()}'"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str) and "\x00" in value:
        return f"x'{value.encode().hex()}'"
    return str(value)


def pg_rows(url: str, spec, table: str, columns: list[str] | None = None) -> list[tuple]:
    t = spec.tables[table]
    cols = dict(identifiers.target_columns(t))
    names = [cols[c] for c in (columns or list(t.columns))]
    query = psycopg.sql.SQL("SELECT {} FROM {} ORDER BY 1").format(
        psycopg.sql.SQL(", ").join(map(psycopg.sql.Identifier, names)),
        psycopg.sql.Identifier(*identifiers.pg_table(spec, table)))
    with psycopg.connect(url) as conn:
        return conn.execute(query).fetchall()


def sqlite_rows(db, table: str, columns: list[str]) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(f"SELECT {', '.join(map(quote, columns))} FROM {quote(table)} ORDER BY 1").fetchall()


@pytest.fixture(scope="module")
def values_run(tmp_path_factory, pg_server):
    def pin_varchar(data):
        data["tables"][m.MESSY]["columns"]["strict5"]["type"] = "varchar(5)"

    return build_and_migrate(tmp_path_factory.mktemp("values"), m.build_values_db, new_database(pg_server), pin_varchar)


def test_messy_values_reconcile_every_row(values_run):
    rep = values_run.report
    assert values_run.res.exit_code == 0, values_run.res.output
    assert rep["status"] == "succeeded"
    cases = sum(len(rows) for _, rows in m.VALUE_CASES.values())
    assert set(rep["tables"]) == {m.MESSY, "textpk"}
    for table, n, quarantined in [(m.MESSY, cases, 25), ("textpk", 5, 2)]:
        t = rep["tables"][table]
        assert t["status"] == "loaded" and t["reconciled"], (table, t)
        assert (t["source_rows"], t["loaded_rows"], t["quarantined_rows"]) == (n, n - quarantined, quarantined)
    assert rep["totals"]["checks_failed"] == 0


@pytest.mark.parametrize("column", list(m.VALUE_CASES))
def test_each_value_is_loaded_faithfully_or_quarantined_with_its_reason(values_run, column):
    spec = values_run.spec
    base = m.row_id(column, 0)
    loaded = {i - base: v for i, v in pg_rows(values_run.url, spec, m.MESSY, ["id", column]) if base <= i < base + 1000}
    quarantined = {json.loads(q["source_key"])["id"] - base: q for q in quarantine_rows(spec, m.MESSY)
                   if q["column"] == column}
    for key, stored, (fate, want) in m.VALUE_CASES[column][1]:
        if fate == m.V:
            assert key in loaded and key not in quarantined, (column, key, quarantined.get(key))
            assert loaded[key] == want, (column, key)
            assert type(loaded[key]) is type(want), (column, key)
        else:
            assert key not in loaded, (column, key)
            q = quarantined[key]
            assert (q["table"], q["reason"]) == (m.MESSY, want), (column, key)
            assert q["raw_value"] == raw_text(stored), (column, key)
            assert json.loads(q["row"])["id"] == base + key
    assert len(loaded) + len(quarantined) == len(m.VALUE_CASES[column][1])


def test_varchar_overflow_widens_to_text_in_init_and_is_reported(values_run):
    assert values_run.spec.tables[m.MESSY].columns["short"].type == "text"
    types_md = values_run.spec_path.with_suffix(".types.md").read_text()
    assert "values up to 10 characters exceed varchar(5); proposed as text" in types_md


def test_null_in_text_primary_key_is_quarantined_with_its_row(values_run):
    spec = values_run.spec
    assert pg_rows(values_run.url, spec, "textpk") == [("a", "first"), ("b", "second"), ("c", "third")]
    q = sorted(quarantine_rows(spec, "textpk"), key=lambda r: r["row"])
    assert [(r["source_key"], r["column"], r["reason"]) for r in q] == [
        ('{"code":null}', "code", "NULL in NOT NULL column")] * 2
    assert [json.loads(r["row"])["label"] for r in q] == ["null key 1", "null key 2"]
    assert "textpk.code: 2 rows have a NULL primary key and will be quarantined" in values_run.init.output


def test_quarantine_is_queryable_in_postgres(values_run):
    with psycopg.connect(values_run.url) as conn:
        rows = conn.execute("SELECT run_id, table_name, source_key, column_name, raw_value, reason, row"
                            " FROM nova_meta.nova_quarantine").fetchall()
    assert {r[0] for r in rows} == {values_run.report["run_id"]}
    parquet = {(t, q["source_key"], q["column"], q["raw_value"], q["reason"], q["row"])
               for t in values_run.spec.tables for q in quarantine_rows(values_run.spec, t)}
    assert {r[1:] for r in rows} == parquet
    assert len(rows) == values_run.report["totals"]["quarantined_rows"] == 27
    assert rows[0][6] and json.loads(rows[0][6])  # the whole raw row, for re-loading after a fix


@pytest.fixture(scope="module")
def schema_run(tmp_path_factory, pg_server):
    return build_and_migrate(tmp_path_factory.mktemp("schema"), m.build_schema_db, new_database(pg_server))


def test_messy_schema_loads_every_table_and_names_the_orphans(schema_run):
    rep = schema_run.report
    for name, t in rep["tables"].items():
        assert t["status"] == "loaded" and t["reconciled"] and t["quarantined_rows"] == 0, (name, t)
    failed = [(c["table"], c["check"], c["failing_keys"]) for c in rep["checks"] if not c["passed"]]
    # Orphans already in the source are loaded as they are; the FK check fails naming them (exit 1).
    assert sorted(failed) == [("postgres/public/child", "foreign_keys", [{"id": 2, "parent_id": 999}]),
                              ("postgres/public/emp", "foreign_keys", [{"id": 4, "boss": 77}])]
    assert schema_run.res.exit_code == 1


def test_generated_without_rowid_composite_and_self_referencing_tables_arrive_unchanged(schema_run):
    spec = schema_run.spec
    assert pg_rows(schema_run.url, spec, "gen", ["id", "a", "name", "twice", "shout"]) == [
        (1, 5, "ann", 10, "ANN"), (2, None, "bob", None, "BOB"), (3, -4, None, -8, None)]
    for table in ("wr", "pairs", "parent", "child", "emp"):
        cols = list(spec.tables[table].columns)
        assert sorted(pg_rows(schema_run.url, spec, table), key=repr) == \
            sorted(sqlite_rows(schema_run.db, table, cols), key=repr), table
    with psycopg.connect(schema_run.url) as conn:
        cons = {(r[0], r[1]): r[2] for r in conn.execute(
            "SELECT conrelid::regclass::text, contype::text, convalidated FROM pg_constraint"
            " WHERE connamespace = 'public'::regnamespace")}
    assert cons[("wr", "p")] and cons[("pairs", "p")]
    assert cons[("child", "f")] is False and cons[("emp", "f")] is False  # NOT VALID: orphans kept, reported


def test_fts_views_and_triggers_are_carried_over(schema_run):
    out = schema_run.init.output
    assert "grown_ups" not in out and "emp_audit" not in out and "notes_fts" not in out  # nothing left behind
    assert [t for t in schema_run.spec.tables if t.startswith("notes_fts")] == ["notes_fts"]  # shadow tables skipped
    assert schema_run.spec.tables["notes_fts"].fts[0].columns == ["body"]
    types_md = schema_run.spec_path.with_suffix(".types.md").read_text()
    assert "grown_ups" in types_md and "emp_audit" in types_md and "notes_fts_data" in types_md
    with psycopg.connect(schema_run.url) as conn:
        assert conn.execute("SELECT name FROM grown_ups").fetchall() == [("ceo",)]
        assert conn.execute("SELECT count(*) FROM notes_fts WHERE search @@ websearch_to_tsquery('simple', 'full')"
                            ).fetchone()[0] == 1
        assert conn.execute("SELECT count(*) FROM pg_trigger WHERE tgname = 'emp_audit'").fetchone()[0] == 1


def test_long_odd_and_colliding_identifiers(schema_run):
    spec = schema_run.spec
    long_target = identifiers.pg_table(spec, m.LONG_TABLE)[1]
    short_target = identifiers.pg_table(spec, m.COLLIDING_TABLE)[1]
    assert long_target == m.COLLIDING_TABLE and short_target != long_target
    assert all(len(n.encode()) <= 63 for n in (long_target, short_target))
    assert pg_rows(schema_run.url, spec, m.LONG_TABLE) == [(1, "one", "two")]
    assert pg_rows(schema_run.url, spec, m.COLLIDING_TABLE) == [(1, "short name"), (2, "same target once shortened")]
    assert f"table {m.COLLIDING_TABLE}: renamed to {short_target} (another table has that name)" in schema_run.init.output
    cols = list(spec.tables[m.ODD_TABLE].columns)
    assert cols == ["select", "from", "has space", 'quo"te', "Mixed Case", "ünïcode"]
    assert pg_rows(schema_run.url, spec, m.ODD_TABLE) == sqlite_rows(schema_run.db, m.ODD_TABLE, cols)


def test_table_over_1600_columns_fails_alone_with_a_reason(tmp_path, pg_url):
    run = build_and_migrate(tmp_path, m.build_wide_db, pg_url)
    assert f"table wide: {m.WIDE_COLUMNS + 1} columns; PostgreSQL tables hold at most 1600" in run.init.output
    tables = run.report["tables"]
    assert tables["narrow"]["status"] == "loaded" and tables["narrow"]["loaded_rows"] == 2
    assert tables["wide"]["status"] == "failed" and "1600" in tables["wide"]["error"]
    assert run.res.exit_code == 1


def test_fk_cycle_loads_both_tables(tmp_path, pg_url):
    run = build_and_migrate(tmp_path, m.build_cycle_db, pg_url)
    assert run.report is not None
    assert {n: t["loaded_rows"] for n, t in run.report["tables"].items()} == {"cyc_a": 3, "cyc_b": 2}


def one_line_exit_2(res):
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("nova-pipeline: "), res.output
    return lines[0]


@pytest.mark.parametrize("change, expected", [
    ({"on_bad_row": "explode"}, "on_bad_row: Input should be 'quarantine', 'fail' or 'null_field'"),
    ({"tables": {"t": {"columns": {"id": {"type": "bigintt"}}}}}, "tables.t.columns.id.type: unknown type 'bigintt'"),
    ({"tables": {"t": {"colums": {}}}}, "tables.t.colums: unknown key"),
    ({"batch_rows": 0}, "batch_rows: Input should be greater than 0"),
    ({"tables": {"t": {"primary_key": ["nope"], "columns": {"id": {"type": "bigint"}}}}},
     "tables.t.primary_key: column 'nope' is not in tables.t.columns"),
])
def test_invalid_spec_values_give_one_line_and_exit_2(tmp_path, change, expected):
    spec = {"source": {"sqlite": "src.sqlite"}, "tables": {"t": {"columns": {"id": {"type": "bigint"}}}}, **change}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(spec))
    line = one_line_exit_2(CliRunner().invoke(main, ["migrate", "--spec", str(path), "--no-backup"]))
    assert expected in line and str(path) in line


def test_unreachable_target_and_missing_files_give_one_line_and_exit_2(tmp_path):
    db = tmp_path / "src.sqlite"
    sqlite3.connect(db).executescript("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"source": {"sqlite": "src.sqlite"},
                                    "tables": {"t": {"columns": {"id": {"type": "bigint"}}}}}))
    runner = CliRunner()
    line = one_line_exit_2(runner.invoke(main, ["migrate", "--spec", str(spec), "--no-backup", "--postgres-url",
                                                f"postgresql://nova:s3cret@/x?host={tmp_path}/nowhere"]))
    assert "s3cret" not in line
    line = one_line_exit_2(runner.invoke(main, ["migrate", "--spec", str(tmp_path / "missing.yaml"), "--no-backup"]))
    assert "missing.yaml" in line
    res = runner.invoke(main, ["init", "--source", str(tmp_path / "missing.sqlite")])
    assert res.exit_code == 2 and "Traceback" not in res.output


@pytest.mark.parametrize("url", ["postgres//localhost/db", "mysql://nova:s3cret@localhost/db", "localhost:5432"])
def test_a_malformed_postgres_url_gives_one_line_and_exit_2(tmp_path, url):
    db = tmp_path / "src.sqlite"
    sqlite3.connect(db).executescript("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"source": {"sqlite": "src.sqlite"},
                                    "tables": {"t": {"columns": {"id": {"type": "bigint"}}}}}))
    line = one_line_exit_2(CliRunner().invoke(main, ["migrate", "--spec", str(spec), "--no-backup",
                                                     "--postgres-url", url]))
    assert "not a PostgreSQL URL" in line and "s3cret" not in line


def test_a_huge_spec_is_refused_at_once_with_one_line(tmp_path):
    db = tmp_path / "src.sqlite"
    sqlite3.connect(db).executescript("CREATE TABLE t0 (id INTEGER PRIMARY KEY);")
    table = "  t{i}:\n    target: postgres\n    columns:\n      id: {{type: bigint, declared: INTEGER}}\n"
    path = tmp_path / "huge.yaml"
    path.write_text("source: {sqlite: src.sqlite}\ntables:\n" + "".join(table.format(i=i) for i in range(70_000)))
    assert path.stat().st_size > 4 << 20
    started = time.perf_counter()
    line = one_line_exit_2(CliRunner().invoke(main, ["plan", "--spec", str(path)]))
    assert time.perf_counter() - started < 5
    assert str(path) in line and "MiB limit" in line


def _truncated(path):
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t (v) VALUES (?)", [("x" * 1000,) for _ in range(200)])
    with open(path, "r+b") as f:
        f.truncate(path.stat().st_size // 2)


BAD_SOURCES = [
    (_truncated, "truncated SQLite database: its header says"),
    (lambda path: path.write_text("id,name\n1,ann\n" * 300), "not a SQLite database"),
    (lambda path: path.write_bytes(b""), "empty file (0 bytes), not a SQLite database"),
]


@pytest.mark.parametrize("make, expected", BAD_SOURCES, ids=["truncated", "not-sqlite", "empty"])
@pytest.mark.parametrize("backup", [True, False], ids=["backup", "no-backup"])
def test_a_bad_source_is_refused_with_one_line_before_anything_runs(tmp_path, pg_url, monkeypatch, make, expected,
                                                                    backup):
    monkeypatch.setenv("NOVA_BACKUP_KEY", "ab" * 32)
    make(tmp_path / "src.sqlite")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"source": {"sqlite": "src.sqlite"},
                                    "tables": {"t": {"columns": {"id": {"type": "bigint"}}}}}))
    args = ["migrate", "--spec", str(spec), "--postgres-url", pg_url] + ([] if backup else ["--no-backup"])
    line = one_line_exit_2(CliRunner().invoke(main, args))
    assert f"{tmp_path / 'src.sqlite'}: {expected}" in line
    assert not (tmp_path / "data").exists()  # no staging, snapshot, backup or report
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_namespace WHERE nspname = 'nova_meta'").fetchone()[0] == 0
    line = one_line_exit_2(CliRunner().invoke(main, ["init", "--source", str(tmp_path / "src.sqlite"),
                                                     "--out", str(tmp_path / "new.yaml")]))
    assert f"{tmp_path / 'src.sqlite'}: {expected}" in line and not (tmp_path / "new.yaml").exists()


def test_a_source_without_a_table_of_the_spec_is_refused_before_anything_runs(tmp_path, pg_url):
    sqlite3.connect(tmp_path / "src.sqlite").executescript("CREATE TABLE t (id INTEGER PRIMARY KEY);")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"source": {"sqlite": "src.sqlite"}, "tables": {
        "t": {"columns": {"id": {"type": "bigint"}}}, "Album": {"columns": {"id": {"type": "bigint"}}}}}))
    for command in (["migrate", "--no-backup", "--postgres-url", pg_url], ["plan"]):
        line = one_line_exit_2(CliRunner().invoke(main, [*command, "--spec", str(spec)]))
        assert line.endswith("src.sqlite: no table 'Album' in the SQLite source, but the spec migrates it")


def test_a_source_locked_by_another_process_is_refused_after_a_bounded_wait(tmp_path, pg_url, monkeypatch):
    from nova_pipeline.extract import snapshot

    db = tmp_path / "src.sqlite"
    sqlite3.connect(db).executescript("CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);")
    spec = tmp_path / "spec.yaml"
    spec.write_text(yaml.safe_dump({"source": {"sqlite": "src.sqlite"},
                                    "tables": {"t": {"columns": {"id": {"type": "bigint"}}}}}))
    holder = subprocess.Popen([sys.executable, "-c", "import sqlite3, sys, time\n"
                               "conn = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
                               "conn.execute('BEGIN EXCLUSIVE')\nprint('locked', flush=True)\ntime.sleep(120)\n",
                               str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        monkeypatch.setattr(snapshot, "BUSY_SECONDS", 1.0)
        for command in (["migrate", "--spec", str(spec), "--postgres-url", pg_url],
                        ["init", "--source", str(db), "--out", str(tmp_path / "new.yaml")]):
            started = time.perf_counter()
            line = one_line_exit_2(CliRunner().invoke(main, command))
            assert time.perf_counter() - started < 10
            assert line.endswith(f"{db}: source is locked by another process (waited 1 s); "
                                 "retry when its writer has finished")
    finally:
        holder.kill()
        holder.wait()
