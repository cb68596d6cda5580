"""The application's views, triggers, FTS table and parity statements survive `init` + `migrate` with no spec edits."""

import json
import sqlite3

import psycopg
import pytest
from click.testing import CliRunner

from nova_pipeline.cli.main import main
from nova_pipeline.appschema.parity import normalise
from nova_pipeline_tests.cli_runs import init_and_migrate

WORDS = ["sqlite", "postgres", "migration", "trigger", "view", "search", "index", "query"]


def build_app_db(path):
    with sqlite3.connect(path) as conn:
        conn.executescript("""
            CREATE TABLE authors (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL, age INTEGER,
                                  active BOOLEAN NOT NULL DEFAULT 1, updated_at DATETIME);
            CREATE TABLE books (id INTEGER PRIMARY KEY, author_id INTEGER REFERENCES authors(id), title TEXT NOT NULL,
                                status TEXT, pages INTEGER);
            CREATE VIEW author_books AS
                SELECT a.id, a.name || ' (' || ifnull(a.age, '?') || ')' AS label,
                       group_concat(b.title, ', ') AS titles, count(b.id) AS books, sum(b.pages) AS pages
                FROM authors a LEFT JOIN books b ON b.author_id = a.id
                WHERE a.active = 1 GROUP BY a.id ORDER BY a.id LIMIT 30;
            CREATE VIEW "Busy Authors" AS SELECT label, books FROM author_books WHERE books >= 3;
            CREATE VIEW storage_kinds AS SELECT typeof(name) AS kind FROM authors;
            CREATE TRIGGER authors_touch AFTER UPDATE ON authors
                BEGIN UPDATE authors SET updated_at = CURRENT_TIMESTAMP WHERE id = NEW.id; END;
            CREATE TRIGGER books_echo AFTER INSERT ON books BEGIN SELECT printf('%d', NEW.id); END;
            CREATE VIRTUAL TABLE notes_fts USING fts5(title, body);
        """)
        for i in range(1, 51):
            conn.execute("INSERT INTO authors (name, age, active, updated_at) VALUES (?, ?, ?, ?)",
                         (f"Author {i}", None if i % 7 == 0 else 20 + i, i % 5 != 0, "2024-01-01 10:00:00"))
        for i in range(1, 121):
            conn.execute("INSERT INTO books (author_id, title, status, pages) VALUES (?, ?, ?, ?)",
                         (1 + i % 40, f"Book {i}", "published" if i % 3 else "draft", 100 + i))
        for i in range(40):
            conn.execute("INSERT INTO notes_fts (title, body) VALUES (?, ?)",
                         (f"note {i} {WORDS[i % 8]}", f"about {WORDS[(i * 3) % 8]} and {WORDS[(i + 5) % 8]}"))


def same_rows(db, pg_url, sqlite_sql, pg_sql, lists=None):
    """Both sides' rows, normalised, as sorted lists; `lists`: group_concat columns (position → separator),
    whose parts SQLite orders as it happens to visit rows."""
    def rows(cursor):
        out = []
        for r in cursor:
            values = [normalise(v) for v in r]
            for i, sep in (lists or {}).items():
                values[i] = sep.join(sorted(values[i].split(sep))) if values[i] else values[i]
            out.append(repr(tuple(values)))
        return sorted(out)

    with sqlite3.connect(db) as lite, psycopg.connect(pg_url) as pg:
        a, b = rows(lite.execute(sqlite_sql)), rows(pg.execute(pg_sql))
    assert a and a == b
    return len(a)


@pytest.fixture(scope="module")
def app(tmp_path_factory, pg_server):
    from nova_pipeline_tests.conftest import _create_db

    tmp = tmp_path_factory.mktemp("app")
    db, url = tmp / "app.sqlite", _create_db(pg_server, f"app_objects_{tmp.name[-6:]}")
    build_app_db(db)
    # validate runs the view and parity checks again: the snapshot stays
    run = init_and_migrate(tmp, db, url, spec_name="app.yaml", edit=lambda spec: spec.update(keep_staging=True))
    return {"db": db, "url": url, "spec": run.spec_path, "res": run.res, "report": run.report}


def test_migration_succeeds_with_views_triggers_fts(app):
    assert app["res"].exit_code == 0, app["res"].output
    assert app["report"]["tables"]["notes_fts"]["loaded_rows"] == 40


def test_the_report_asset_lists_what_is_not_carried_over(app):  # as a run from the Dagster UI shows it
    from nova_pipeline.orchestration.defs.keys import REPORT
    from nova_pipeline.orchestration.runs import dagster_instance

    event = dagster_instance().get_latest_materialization_event(REPORT)
    assert "view storage_kinds not carried over" in event.asset_materialization.metadata["summary"].value


def test_rerun_keeps_every_object_once(app):
    def oid():
        with psycopg.connect(app["url"]) as pg:
            return pg.execute("SELECT 'notes_fts'::regclass::oid").fetchone()[0]

    before = oid()
    res = CliRunner().invoke(main, ["migrate", "--spec", str(app["spec"]), "--postgres-url", app["url"], "--no-backup"],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.output
    with psycopg.connect(app["url"]) as pg:
        assert pg.execute("SELECT count(*) FROM notes_fts WHERE search @@ to_tsquery('simple', 'note')").fetchone()[0] == 40
        assert pg.execute("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal").fetchone()[0] == 1
        assert pg.execute("SELECT count(*) FROM information_schema.views WHERE table_schema = 'public'").fetchone()[0] == 2
    assert oid() == before  # its tsvector column is part of its shape: the table is kept, not re-created


def test_validate_runs_the_view_and_parity_checks_again(app):  # before any test changes the target
    res = CliRunner().invoke(main, ["validate", "--spec", str(app["spec"]), "--postgres-url", app["url"], "--json"],
                             catch_exceptions=False)
    checks = {c["check"]: c for c in json.loads(res.stdout) if c["table"] == "postgres/app_objects"}
    assert checks["view_rows"]["passed"] and checks["parity_rows_books"]["passed"], checks


def test_views_return_the_same_rows(app):
    assert same_rows(app["db"], app["url"], "SELECT * FROM author_books", 'SELECT * FROM "author_books"', {2: ", "}) == 30
    assert same_rows(app["db"], app["url"], 'SELECT * FROM "Busy Authors"', 'SELECT * FROM "Busy Authors"') > 0
    checks = {c["check"]: c for c in app["report"]["checks"]}
    assert checks["view_rows"]["passed"], checks["view_rows"]


def test_update_stamps_updated_at_once(app):
    with psycopg.connect(app["url"]) as pg:
        pg.execute("UPDATE authors SET name = 'Renamed' WHERE id = 3")
        stamped, now = pg.execute("SELECT updated_at, now() FROM authors WHERE id = 3").fetchone()
        untouched = pg.execute("SELECT updated_at FROM authors WHERE id = 4").fetchone()[0]
    assert stamped == now  # the trigger's UPDATE ran in the same transaction, and did not recurse
    assert untouched.year == 2024


def test_fts_rows_and_search_match_sqlite(app):
    with sqlite3.connect(app["db"]) as lite, psycopg.connect(app["url"]) as pg:
        assert pg.execute("SELECT count(*) FROM notes_fts").fetchone()[0] == 40
        for word in ["postgres", "trigger", "note", "sqlite search", "postgres OR view"]:
            sqlite_hits = {r[0] for r in lite.execute("SELECT title FROM notes_fts WHERE notes_fts MATCH ?", (word,))}
            pg_hits = {r[0] for r in pg.execute(
                "SELECT title FROM notes_fts WHERE search @@ websearch_to_tsquery('simple', %s)", (word,))}
            assert sqlite_hits and pg_hits == sqlite_hits, word
        index = pg.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'notes_fts_search_idx'").fetchone()[0]
        assert "USING gin (search)" in index


def test_parity_checks_ran_and_passed(app):
    parity = [c for c in app["report"]["checks"] if c["check"].startswith("parity_")]
    assert len(parity) >= 5  # rows and newest rows of authors and books, rows of notes_fts
    assert all(c["passed"] for c in parity), parity


def test_untranslatable_view_and_trigger_are_reported_with_their_sql(app):
    notes = "\n".join(app["report"]["notes"])
    assert "view storage_kinds not carried over: typeof()" in notes
    assert "CREATE VIEW storage_kinds AS SELECT typeof(name)" in notes
    assert "trigger books_echo not carried over" in notes and "SELECT printf('%d', NEW.id)" in notes
    assert "author_books" not in notes and "authors_touch" not in notes and "notes_fts" not in notes
    types = app["spec"].with_suffix(".types.md").read_text()
    assert "view `storage_kinds` **not carried over**" in types and 'CREATE VIEW "public"."author_books"' in types


def test_plan_shows_translated_and_untranslated_objects(app):
    res = CliRunner().invoke(main, ["plan", "--spec", str(app["spec"])], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert 'CREATE VIEW "public"."Busy Authors"' in res.output
    assert "trigger books_echo NOT carried over" in res.output
    assert "websearch_to_tsquery" in res.output

