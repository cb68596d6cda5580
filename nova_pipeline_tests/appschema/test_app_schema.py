"""The application runs on the migrated database: keys keep counting, CHECKs hold, COLLATE NOCASE keeps its
meaning, generated columns compute, expression and partial indexes exist — shown by running the application's
own statements on SQLite and on PostgreSQL after a plain `init` + `migrate` (no spec edits).

These run on a PostgreSQL built with ICU and contrib (Debian's package, see icu_postgres.py), where COLLATE
NOCASE becomes citext (and, forced, the ICU collation); the embedded pgserver build has neither, which
test_app_schema_units.py covers.
"""

from __future__ import annotations

import itertools
import json
import shutil
import sqlite3

import psycopg
import pytest
import yaml
from click.testing import CliRunner

from nova_pipeline.load import postgres_ddl
from nova_pipeline.cli.main import main
from nova_pipeline.core.spec import load_spec, parse_spec
from nova_pipeline_tests.icu_postgres import postgres_bin, run_server

_databases = itertools.count()


@pytest.fixture(scope="session")
def icu_pg_server():
    """Admin URL of a PostgreSQL server with ICU and contrib, for the session."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("Debian's PostgreSQL (with ICU) is not installed: apt-get install postgresql (.ci/run does)")
    yield from run_server(bindir)


@pytest.fixture
def icu_pg_url(icu_pg_server) -> str:
    name = f"app{next(_databases)}"
    with psycopg.connect(icu_pg_server, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return icu_pg_server.rsplit("/", 1)[0] + f"/{name}"


def build_app_db(path) -> None:
    """A small application database: the constructs an application counts on."""
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE authors (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL COLLATE NOCASE UNIQUE,
            age INTEGER CHECK (age >= 0),
            CHECK (typeof(age) IN ('integer', 'null')));
        CREATE TABLE books (
            id INTEGER PRIMARY KEY,
            author_id INTEGER REFERENCES authors(id),
            title TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'published')),
            pages INTEGER,
            words INTEGER GENERATED ALWAYS AS (pages * 300) VIRTUAL);
        CREATE INDEX books_lower_title ON books (lower(title));
        CREATE INDEX books_published ON books (author_id) WHERE status = 'published';
    """)
    conn.executemany("INSERT INTO authors (name, age) VALUES (?, ?)", [(f"Author {i}", 20 + i) for i in range(1, 51)])
    conn.execute("DELETE FROM authors WHERE id = 50")  # AUTOINCREMENT never hands out 50 again
    conn.executemany("INSERT INTO books (author_id, title, status, pages) VALUES (?, ?, ?, ?)",
                     [(i, f"Title {i}", "published" if i % 2 else "draft", 100 + i) for i in range(1, 31)])
    conn.commit()
    conn.close()


def _outcome(run, statement: str, params=()):
    """('ok', rows) or ('rejected', None): what the application sees."""
    try:
        return "ok", [tuple(r) for r in run(statement, params)]
    except (sqlite3.IntegrityError, psycopg.errors.IntegrityError):
        return "rejected", None


@pytest.fixture(scope="module")
def migrated_app(tmp_path_factory, icu_pg_server):
    tmp = tmp_path_factory.mktemp("app")
    db = tmp / "app.sqlite"
    build_app_db(db)
    with psycopg.connect(icu_pg_server, autocommit=True) as conn:
        conn.execute('CREATE DATABASE "app_e2e"')
    url = icu_pg_server.rsplit("/", 1)[0] + "/app_e2e"
    runner = CliRunner()
    res = runner.invoke(main, ["init", "--source", str(db), "--out", str(tmp / "spec.yaml")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    report = tmp / "report.json"
    res = runner.invoke(main, ["migrate", "--spec", str(tmp / "spec.yaml"), "--postgres-url", url, "--no-backup",
                               "--report", str(report)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    app_copy = tmp / "app_after.sqlite"  # the application's statements write: keep the source as migrated
    shutil.copy(db, app_copy)
    return tmp, app_copy, url, json.loads(report.read_text())


def _pg_run(conn):
    def run(q, p=()):
        conn.execute("SAVEPOINT app")
        try:
            cur = conn.execute(q.replace("?", "%s"), p)
            rows = cur.fetchall() if cur.description else []
            conn.execute("RELEASE SAVEPOINT app")
            return rows
        except psycopg.Error:
            conn.execute("ROLLBACK TO SAVEPOINT app")
            raise
    return run


@pytest.fixture
def sides(migrated_app):
    """(SQLite run, PostgreSQL run) in transactions rolled back after the test; identities restarted again
    (sequences do not roll back, and a rejected INSERT has already drawn its id)."""
    tmp, app_copy, url, _ = migrated_app
    lite = sqlite3.connect(app_copy, isolation_level=None)
    lite.execute("BEGIN")
    pg = psycopg.connect(url)
    yield (lambda q, p=(): lite.execute(q, p).fetchall()), _pg_run(pg)
    lite.execute("ROLLBACK")
    lite.close()
    pg.rollback()
    postgres_ddl.restart_identities(pg, load_spec(tmp / "spec.yaml"), app_copy)
    pg.commit()
    pg.close()


def test_migration_is_proven_equal(migrated_app):
    _, _, _, report = migrated_app
    assert report["status"] == "succeeded"
    assert [c for c in report["checks"] if not c["passed"]] == []  # content hashes equal with a NOCASE column too
    assert any("CHECK (TYPEOF(age) IN ('integer', 'null'))" in n and "typeof()" in n for n in report["notes"])


@pytest.mark.parametrize("statement, params", [
    ("INSERT INTO authors (name, age) VALUES (?, ?) RETURNING id", ("New author", 30)),  # AUTOINCREMENT: 51
    ("INSERT INTO books (title, pages) VALUES (?, ?) RETURNING id, words", ("New book", 10)),  # rowid alias; generated
    ("INSERT INTO authors (name, age) VALUES (?, ?) RETURNING id", ("Negative", -1)),  # CHECK (age >= 0)
    ("INSERT INTO books (title, status) VALUES (?, ?) RETURNING id", ("Bad", "bogus")),  # CHECK (status IN ...)
    ("INSERT INTO authors (name, age) VALUES (?, ?) RETURNING id", ("AUTHOR 1", 40)),  # NOCASE UNIQUE
    ("SELECT id, name FROM authors WHERE name = ?", ("author 2",)),  # NOCASE equality
    ("SELECT name FROM authors WHERE id IN (1, 2, 10, 11) ORDER BY name DESC", ()),
    ("SELECT id FROM books WHERE lower(title) = ? AND status = 'published'", ("title 3",)),
    ("SELECT id FROM authors WHERE name LIKE ? ORDER BY id", ("author 1%",)),  # NOCASE LIKE (citext)
    ("SELECT id FROM authors WHERE name IN ('AUTHOR 3', 'author 4') ORDER BY id", ()),
])
def test_the_app_sees_the_same_outcome(sides, statement, params):
    lite, pg = sides
    assert _outcome(pg, statement, params) == _outcome(lite, statement, params)


def test_the_outcomes_are_the_ones_sqlite_gives(sides):
    lite, pg = sides
    assert _outcome(pg, "INSERT INTO authors (name, age) VALUES (?, ?) RETURNING id", ("X", 1)) == ("ok", [(51,)])
    assert _outcome(pg, "INSERT INTO books (title, pages) VALUES (?, ?) RETURNING id, words", ("Y", 2)) == ("ok", [(31, 600)])
    assert _outcome(pg, "INSERT INTO authors (name) VALUES ('AUTHOR 1')")[0] == "rejected"
    pg("UPDATE books SET pages = 7 WHERE id = 1")
    assert pg("SELECT words FROM books WHERE id = 1") == [(2100,)]


def test_the_indexes_exist_and_are_used(migrated_app):
    _, _, url, _ = migrated_app
    with psycopg.connect(url) as conn:
        defs = dict(conn.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'books'").fetchall())
        assert "lower(title)" in defs["books_lower_title"]
        assert "WHERE (status = 'published'::text)" in defs["books_published"]
        conn.execute("SET enable_seqscan = off")
        plan = conn.execute("EXPLAIN SELECT id FROM books WHERE lower(title) = 'title 3'").fetchall()
        assert "books_lower_title" in " ".join(r[0] for r in plan)
        plan = conn.execute("EXPLAIN SELECT id FROM books WHERE author_id = 3 AND status = 'published'").fetchall()
        assert "books_published" in " ".join(r[0] for r in plan)


def test_plan_and_type_report_show_what_is_carried_over(migrated_app):
    tmp, _, _, _ = migrated_app
    report = (tmp / "spec.types.md").read_text()
    assert "identity: id GENERATED BY DEFAULT AS IDENTITY" in report and ": 51 now" in report
    assert "CHECK `age >= 0` → `\"age\" >= 0`" in report
    assert "typeof() (SQLite storage classes) has no PostgreSQL equivalent" in report
    assert 'GENERATED ALWAYS AS ("pages" * 300) STORED' in report
    assert "index books_lower_title: `(LOWER(\"title\"))`" in report
    assert "## Collations" in report and "LIKE" in report
    res = CliRunner().invoke(main, ["plan", "--spec", str(tmp / "spec.yaml")], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "identity id: restarted at 51 after the load" in res.output
    assert "identity id: restarted at 31 after the load" in res.output
    assert 'generated words: GENERATED ALWAYS AS ("pages" * 300) STORED' in res.output
    assert "CHECK not translated: TYPEOF(age) IN ('integer', 'null')" in res.output
    assert 'CREATE INDEX "books_lower_title" ON "public"."books" (LOWER("title"))' in res.output


def test_citext_is_the_nocase_of_a_server_with_contrib(migrated_app):
    _, _, url, _ = migrated_app
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = 'authors'::regclass"
                            " AND attname = 'name'").fetchone() == ("citext",)


def test_icu_collation_keeps_nocase_where_the_server_has_no_citext(icu_pg_url, monkeypatch):
    """Mode "icu" (forced here: this server has citext too): equality and UNIQUE ignore case; LIKE fails."""
    spec = parse_spec({"source": {"sqlite": "unused.sqlite"}, "tables": {"people": {
        "primary_key": ["id"], "indexes": [{"columns": ["name"], "unique": True}],
        "columns": {"id": {"type": "bigint", "identity": True, "nullable": False},
                    "name": {"type": "text", "collate": "nocase"}}}}})
    monkeypatch.setattr(postgres_ddl, "NOCASE_ORDER", ("icu",))
    with psycopg.connect(icu_pg_url, autocommit=True) as conn:
        actions = postgres_ddl.create_tables(conn, spec)
        assert actions[0] == f"COLLATE NOCASE in public: {postgres_ddl._NOCASE_MODES['icu']}"
        conn.execute("INSERT INTO people (name) VALUES ('Ada'), ('bob'), ('Carl')")
        postgres_ddl.add_constraints(conn, spec)
        assert conn.execute("SELECT collname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation"
                            " WHERE attrelid = 'people'::regclass AND attname = 'name'").fetchone() == ("nova_nocase",)
        assert conn.execute("SELECT id FROM people WHERE name = 'ADA'").fetchall() == [(1,)]
        assert conn.execute("SELECT name FROM people ORDER BY name").fetchall() == [("Ada",), ("bob",), ("Carl",)]
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO people (name) VALUES ('BOB')")
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            conn.execute("SELECT id FROM people WHERE name LIKE 'a%'")
        assert postgres_ddl.create_tables(conn, spec)[-1].startswith("kept")  # the collation shape is recognised


def test_nocase_is_set_up_once_per_schema_and_kept(icu_pg_url):
    spec = parse_spec(yaml.safe_load("""
        source: {sqlite: unused.sqlite}
        targets: {postgres: {schema: app}}
        tables:
          a: {columns: {k: {type: text, collate: nocase}}}
          b: {columns: {k: {type: varchar(20), collate: nocase}}}
    """))
    with psycopg.connect(icu_pg_url, autocommit=True) as conn:
        first = postgres_ddl.create_tables(conn, spec)
        assert first[0] == f"COLLATE NOCASE in app: {postgres_ddl._NOCASE_MODES['citext']}"
        assert postgres_ddl.nocase_mode(conn, "app") == "citext"
        again = postgres_ddl.create_tables(conn, spec)
        assert again[1:] == ["kept app.a (same columns and types)", "kept app.b (same columns and types)"]
        conn.execute("INSERT INTO app.b VALUES ('Mixed Case')")
        assert conn.execute("SELECT count(*) FROM app.b WHERE k = 'MIXED case'").fetchone() == (1,)
