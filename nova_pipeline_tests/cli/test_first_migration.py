"""Issue 19 item 1: a first `migrate` into an empty target needs no NOVA_BACKUP_KEY (an empty baseline is recorded,
and `rollback` to it drops what the migration created); a target holding rows is refused naming real flags."""

import json
import re
import sqlite3

import psycopg
import pytest
import yaml
from click.testing import CliRunner

from nova_pipeline.backup import list_sets
from nova_pipeline.cli.main import main
from nova_pipeline.core.connections import mongo_client

APP = """
CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, updated TEXT);
CREATE TABLE events (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), kind TEXT);
CREATE TABLE logs (id INTEGER PRIMARY KEY, line TEXT);
CREATE VIEW user_emails AS SELECT id, email FROM users;
CREATE TRIGGER users_touch AFTER UPDATE OF email ON users BEGIN
  UPDATE users SET updated = 'x' WHERE id = NEW.id; END;
CREATE VIRTUAL TABLE notes_fts USING fts5(body);
INSERT INTO users VALUES (1, 'a@x.io', NULL), (2, 'b@x.io', NULL);
INSERT INTO events VALUES (1, 1, 'login'), (2, 2, 'logout');
INSERT INTO logs VALUES (1, 'started');
INSERT INTO notes_fts (body) VALUES ('hello world');
"""


@pytest.fixture
def spec_path(tmp_path, monkeypatch):
    monkeypatch.delenv("NOVA_BACKUP_KEY", raising=False)
    db = tmp_path / "app.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript(APP)
    out = tmp_path / "app.spec.yaml"
    res = CliRunner().invoke(main, ["init", "--source", str(db), "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return out


def _with_mongo_logs(spec_path, uri, database="applogs"):
    data = yaml.safe_load(spec_path.read_text())
    data["targets"]["mongo"] = {"uri": uri, "database": database}
    data["tables"]["logs"] = {**data["tables"]["logs"], "target": "mongo"}
    data["tables"]["logs"].pop("table", None)
    data.pop("parity", None)
    spec_path.write_text(yaml.safe_dump(data, sort_keys=False))


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _objects(url):
    with psycopg.connect(url) as conn:
        rels = {r[0] for r in conn.execute(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND c.relkind IN ('r','p','v','S')")}
        funcs = {r[0] for r in conn.execute("SELECT proname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
                                            " WHERE n.nspname = 'public'")}
    return rels, funcs


def test_first_migrate_without_key_then_rollback_drops_what_it_created(spec_path, pg_url, mongo_uri):
    _with_mongo_logs(spec_path, mongo_uri)
    before_rels, before_funcs = _objects(pg_url)
    res = _run("migrate", "--spec", spec_path, "--postgres-url", pg_url)
    assert res.exit_code == 0, res.output
    rels, funcs = _objects(pg_url)
    assert {"public.users", "public.events", "public.user_emails", "public.notes_fts", "public.users_id_seq"} <= rels
    assert funcs - before_funcs  # the trigger's function
    assert "applogs" in mongo_client(mongo_uri).list_database_names()
    [baseline] = list_sets(str(spec_path.parent / "data" / "backups"))
    assert baseline.pre_migration and baseline.manifest["baseline"] and baseline.manifest["files"] == []

    res = _run("rollback", "--spec", spec_path, "--reason", "try again", "--postgres-url", pg_url, "--json")
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["restored_set"] == baseline.location and out["safety_set"] is None
    rels, funcs = _objects(pg_url)
    assert {r for r in rels if not r.startswith("nova_meta.")} == before_rels and funcs == before_funcs
    assert mongo_client(mongo_uri)["applogs"].list_collection_names() == []

    res = _run("migrate", "--spec", spec_path, "--postgres-url", pg_url)  # and again, from the same empty target
    assert res.exit_code == 0, res.output


@pytest.mark.mongo_server
def test_rollback_to_a_baseline_on_a_real_mongodb_drops_the_new_collections_and_keeps_the_others(spec_path, pg_url,
                                                                                                 mongo_server):
    uri, database = mongo_server
    client = mongo_client(uri)
    client[database]["unrelated"].insert_one({"_id": 1})
    _with_mongo_logs(spec_path, uri, database)
    res = _run("migrate", "--spec", spec_path, "--postgres-url", pg_url)
    assert res.exit_code == 0, res.output
    assert client[database]["logs"].count_documents({}) == 1
    res = _run("rollback", "--spec", spec_path, "--reason", "again", "--postgres-url", pg_url)
    assert res.exit_code == 0, res.output
    assert client[database].list_collection_names() == ["unrelated"]


def test_rollback_without_key_refuses_when_the_app_changed_the_tables(spec_path, pg_url):
    assert _run("migrate", "--spec", spec_path, "--postgres-url", pg_url).exit_code == 0
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO public.users (email) VALUES ('new@x.io')")
    res = _run("rollback", "--spec", spec_path, "--reason", "oops", "--postgres-url", pg_url)
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "public.users" in res.stderr and "NOVA_BACKUP_KEY" in res.stderr and "Traceback" not in res.output


def _one_line_naming_real_flags(res, table):
    assert res.exit_code == 2, res.output
    [line] = res.stderr.strip().splitlines()
    assert table in line and "NOVA_BACKUP_KEY" in line and "Traceback" not in res.output
    flags = set(re.findall(r"--[a-z][a-z-]+", line))
    assert flags == {"--no-backup"}
    assert flags <= set(re.findall(r"--[a-z][a-z-]+", _run("migrate", "--help").output))


def test_migrate_again_without_key_once_the_target_holds_rows_is_refused(spec_path, pg_url):
    assert _run("migrate", "--spec", spec_path, "--postgres-url", pg_url, "--no-backup").exit_code == 0
    _one_line_naming_real_flags(_run("migrate", "--spec", spec_path, "--postgres-url", pg_url), "public.events")


def test_forced_migrate_without_key_over_foreign_rows_is_refused(spec_path, pg_url):
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.users (id bigint, email text, updated text)")
        conn.execute("INSERT INTO public.users VALUES (7, 'old@x.io', NULL)")
    _one_line_naming_real_flags(_run("migrate", "--spec", spec_path, "--postgres-url", pg_url, "--force"),
                                "public.users")
    with psycopg.connect(pg_url) as conn:  # nothing was migrated
        assert conn.execute("SELECT count(*) FROM public.users").fetchone()[0] == 1
