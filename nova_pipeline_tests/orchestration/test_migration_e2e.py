"""init + migrate of a database not written with this tool in mind: every row arrives, values equal."""

import json
import sqlite3
from datetime import UTC, datetime

import psycopg
import pytest
from click.testing import CliRunner

from nova_pipeline.cli.main import main
from nova_pipeline_tests.cli_runs import init_and_migrate

FOREIGN_SCHEMA = """
CREATE TABLE "Customer Accounts" ("Account ID" INTEGER PRIMARY KEY, "Full Name" TEXT NOT NULL, "order" TEXT,
                                  balance REAL, avatar BLOB, joined DATETIME, active BOOLEAN);
CREATE TABLE products (sku TEXT PRIMARY KEY, title VARCHAR(40), price NUMERIC(10,2), attrs JSON);
CREATE TABLE order_lines (account_id INTEGER REFERENCES "Customer Accounts"("Account ID"),
                          sku TEXT REFERENCES products(sku), line_no INTEGER, qty INTEGER DEFAULT 1,
                          PRIMARY KEY (account_id, line_no));
CREATE TABLE staff (id INTEGER PRIMARY KEY, boss INTEGER REFERENCES staff(id), name TEXT);
CREATE TABLE tags (tag TEXT NOT NULL, weight REAL, PRIMARY KEY (tag)) WITHOUT ROWID;
CREATE VIEW big_spenders AS SELECT "Full Name" FROM "Customer Accounts" WHERE balance > 100;
CREATE INDEX products_title ON products(title);
"""


def make_foreign_db(path):
    conn = sqlite3.connect(path)
    conn.executescript(FOREIGN_SCHEMA)
    conn.executemany('INSERT INTO "Customer Accounts" VALUES (?,?,?,?,?,?,?)', [
        (1, "Zoë Ångström", "first", 150.25, b"\x00\x01\xff", "2024-01-05 10:00:00", 1),
        (2, "李雷", None, 0.1 + 0.2, b"", "2024-02-29T23:59:59Z", 0),
        (3, "O'Brien \"the\" tab\there", "x\ny", -1e-300, None, 1706000000, 1),
        (4, "emoji 🚀", "", None, b"PNG", 1706000000123, None),
    ])
    conn.executemany("INSERT INTO products VALUES (?,?,?,?)", [
        ("A-1", "Widget", "19.99", '{"color": "red", "sizes": [1, 2]}'),
        ("B-2", "Gadget", 5, None),
        ("C-3", "Doohickey", 0.5, '{"nested": {"deep": true}}'),
    ])
    conn.executemany("INSERT INTO order_lines VALUES (?,?,?,?)", [(1, "A-1", 1, 2), (1, "B-2", 2, 1), (2, "C-3", 1, 5), (4, "A-1", 1, 1)])
    conn.executemany("INSERT INTO staff VALUES (?,?,?)", [(1, None, "ceo"), (2, 1, "cto"), (3, 2, "dev")])
    conn.executemany("INSERT INTO tags VALUES (?,?)", [("alpha", 1.5), ("beta", 2.0)])
    conn.commit()
    conn.close()


@pytest.fixture
def migrated(tmp_path, pg_url):
    db = tmp_path / "shop.sqlite"
    make_foreign_db(db)
    run = init_and_migrate(tmp_path, db, pg_url, spec_name="shop.yaml")
    return db, pg_url, run.res, run.report


def test_init_and_migrate_load_every_table(migrated):
    db, pg_url, res, report = migrated
    assert res.exit_code == 0, res.output
    assert report["status"] == "succeeded"
    expected = {"Customer Accounts": 4, "products": 3, "order_lines": 4, "staff": 3, "tags": 2}
    assert set(report["tables"]) == set(expected)
    for name, rows in expected.items():
        t = report["tables"][name]
        assert (t["source_rows"], t["loaded_rows"], t["quarantined_rows"], t["status"]) == (rows, rows, 0, "loaded"), name
    assert "big_spenders" not in report["tables"]
    assert not any("big_spenders" in n for n in report["notes"])  # the view is recreated in PostgreSQL
    with psycopg.connect(pg_url) as conn:
        assert conn.execute('SELECT count(*) FROM big_spenders').fetchone()[0] == conn.execute(
            'SELECT count(*) FROM "Customer Accounts" WHERE balance > 100').fetchone()[0]


def test_values_arrive_unchanged(migrated):
    db, pg_url, _, _ = migrated
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute('SELECT "Account ID", "Full Name", "order", balance, avatar, joined, active '
                            'FROM public."Customer Accounts" ORDER BY 1').fetchall()
        assert rows[0] == (1, "Zoë Ångström", "first", 150.25, b"\x00\x01\xff",
                           datetime(2024, 1, 5, 10, tzinfo=UTC), True)
        assert rows[1][3] == 0.1 + 0.2 and rows[1][4] == b"" and rows[1][5] == datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)
        assert rows[2][1] == "O'Brien \"the\" tab\there" and rows[2][2] == "x\ny" and rows[2][3] == -1e-300
        assert rows[2][5] == datetime.fromtimestamp(1706000000, UTC)
        assert rows[3][2] == "" and rows[3][4] == b"PNG" and rows[3][6] is None
        assert rows[3][5] == datetime.fromtimestamp(1706000000.123, UTC)
        attrs = dict(conn.execute("SELECT sku, attrs FROM public.products").fetchall())
        assert attrs == {"A-1": {"color": "red", "sizes": [1, 2]}, "B-2": None, "C-3": {"nested": {"deep": True}}}
        src = sqlite3.connect(db)
        for table, cols in [("order_lines", "account_id, sku, line_no, qty"), ("staff", "id, boss, name"),
                            ("tags", "tag, weight")]:
            want = sorted(src.execute(f"SELECT {cols} FROM {table}").fetchall(), key=repr)
            got = sorted(conn.execute(f"SELECT {cols} FROM public.{table}").fetchall(), key=repr)
            assert got == want, table


def test_constraints_exist_after_the_data(migrated):
    _, pg_url, _, _ = migrated
    with psycopg.connect(pg_url) as conn:
        cons = {r[0] for r in conn.execute(
            "SELECT contype::text || ':' || conrelid::regclass::text FROM pg_constraint WHERE connamespace = 'public'::regnamespace")}
    assert 'p:"Customer Accounts"' in cons and "p:order_lines" in cons and "f:order_lines" in cons and "f:staff" in cons


def test_rerun_replaces_never_duplicates(migrated, tmp_path):
    db, pg_url, _, _ = migrated
    res = CliRunner().invoke(main, ["migrate", "--spec", str(tmp_path / "shop.yaml"), "--postgres-url", pg_url,
                                    "--no-backup"], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM public.order_lines").fetchone()[0] == 4


def test_a_table_postgres_cannot_hold_fails_alone(tmp_path, pg_url):
    db = tmp_path / "wide.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE wide (" + ", ".join(f"c{i} INTEGER" for i in range(1601)) + ")")
        conn.execute("INSERT INTO wide (c0) VALUES (1)")
        conn.execute("CREATE TABLE narrow (id INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO narrow VALUES (1, 'a'), (2, 'b')")
    spec = tmp_path / "wide.yaml"
    runner = CliRunner()
    assert runner.invoke(main, ["init", "--source", str(db), "--out", str(spec)]).exit_code == 0
    out = tmp_path / "r.json"
    res = runner.invoke(main, ["migrate", "--spec", str(spec), "--postgres-url", pg_url, "--no-backup",
                               "--report", str(out)], catch_exceptions=False)
    assert res.exit_code == 1
    report = json.loads(out.read_text())
    assert report["tables"]["narrow"]["status"] == "loaded" and report["tables"]["narrow"]["loaded_rows"] == 2
    assert report["tables"]["wide"]["status"] == "failed"
    assert "1600" in report["tables"]["wide"]["error"]


def test_target_postgres_migrates_and_reports_only_postgres_tables(tmp_path, pg_url):
    db = tmp_path / "mixed.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript("""CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);
                              CREATE TABLE logs (id INTEGER PRIMARY KEY, msg TEXT);
                              INSERT INTO users VALUES (1, 'a'); INSERT INTO logs VALUES (1, 'x'), (2, 'y');""")
    spec = tmp_path / "mixed.yaml"
    spec.write_text(f"""source: {{sqlite: {db}}}
targets: {{postgres: {{schema: public}}, mongo: {{database: logs}}}}
tables:
  users: {{primary_key: [id], columns: {{id: {{type: bigint, nullable: false}}, name: {{type: text}}}}}}
  logs: {{target: mongo, primary_key: [id], columns: {{id: {{type: bigint, nullable: false}}, msg: {{type: text}}}}}}
""")
    out = tmp_path / "r.json"
    res = CliRunner().invoke(main, ["migrate", "--spec", str(spec), "--target", "postgres", "--postgres-url", pg_url,
                                    "--no-backup", "--report", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert set(report["tables"]) == {"users"} and report["tables"]["users"]["loaded_rows"] == 1
