"""Faults around a run: a lost migration lock, killed backends, killed runs that are resumed, and existing
targets edited since the last migration."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import yaml
from click.testing import CliRunner

import nova_pipeline
from nova_pipeline.load import postgres_load
from nova_pipeline.core import run_lock
from nova_pipeline.cli.main import main
from nova_pipeline.orchestration.dagster_storage import INSTANCE_YAML
from nova_pipeline_tests.orchestration.test_failures import dagster_home, init_spec, wait_for_no_sessions  # noqa: F401

CODE_ROOT = str(Path(nova_pipeline.__file__).resolve().parents[1])  # subprocesses run the code under test
# Runs the CLI with the load of one table replaced by SIGKILL of the process: a kill at an exact point.
KILLED_AT_LOAD = """
import os, signal, sys
from nova_pipeline.load import postgres_load
from nova_pipeline.cli.main import entry

real = postgres_load._load_once
def load_or_die(conn, spec, table, *args):
    if table == os.environ["KILL_AT_TABLE"]:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(conn, spec, table, *args)
postgres_load._load_once = load_or_die
sys.argv[0] = "nova-pipeline"
entry()
"""


def source_db(path: Path, names: list[str], bad_qty: bool = True) -> Path:
    """`items` (one row with a qty that is not an integer) and `child` referencing it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE items (id INTEGER PRIMARY KEY, qty INTEGER, name TEXT);
        CREATE TABLE child (id INTEGER PRIMARY KEY, item_id INTEGER REFERENCES items(id), note TEXT);
    """)
    conn.executemany("INSERT INTO items VALUES (?, ?, ?)", [(i, i * 10, n) for i, n in enumerate(names, 1)])
    if bad_qty:
        conn.execute("INSERT INTO items VALUES (99, 'lots', 'bad')")
    conn.executemany("INSERT INTO child VALUES (?, ?, ?)", [(i, i, f"note {i}") for i in range(1, len(names) + 1)])
    conn.commit()
    conn.close()
    return path


def spec_for(tmp_path: Path, name: str, names: list[str]) -> Path:
    folder = tmp_path / name
    spec = init_spec(source_db(folder / "source.sqlite", names), folder / "spec.yaml")
    data = yaml.safe_load(spec.read_text())
    data["tables"]["items"]["columns"]["qty"]["type"] = "bigint"  # 'lots' is quarantined
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    return spec


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def migrate(spec: Path, url: str, *extra: str):
    return cli("migrate", "--spec", str(spec), "--postgres-url", url, "--no-backup", *extra)


def items_in(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT id, qty, name FROM public.items ORDER BY id").fetchall()


def quarantine_in(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT run_id, table_name, raw_value FROM nova_meta.nova_quarantine ORDER BY 1").fetchall()


def lock_holder(url: str) -> int | None:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = %s::int::oid"
                           " AND objid = %s::int::oid", run_lock.lock_key(conn.info.dbname)).fetchone()
    return row[0] if row else None


def terminate_lock_holder(url: str) -> None:
    pid = lock_holder(url)
    assert pid is not None, "no migration lock is held"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    deadline = time.monotonic() + 10
    while lock_holder(url) is not None:
        assert time.monotonic() < deadline, "the terminated backend kept the lock"
        time.sleep(0.02)


def subprocess_migrate(spec: Path, url: str, home: Path, *, script: str | None = None, **env) -> subprocess.CompletedProcess:
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    code = ["-c", script] if script else ["-m", "nova_pipeline.cli.main"]
    return subprocess.run([sys.executable, *code, "migrate", "--spec", str(spec), "--postgres-url", url, "--no-backup"],
                          env={**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": CODE_ROOT, **env},
                          cwd=spec.parent, capture_output=True,
                          text=True, timeout=300)


# Item 2: a run that lost its lock stops; the run that took the lock over wins.
def test_a_run_that_lost_the_lock_commits_nothing_and_the_next_migration_wins(tmp_path, pg_url, dagster_home,
                                                                             monkeypatch):
    first, second = spec_for(tmp_path, "a", ["a1", "a2", "a3"]), spec_for(tmp_path, "b", ["b1", "b2"])
    real_load = postgres_load._load_once
    other = []

    def lock_taken_over_then_load(conn, spec, table, *args):
        if not other:  # the lock's backend dies, and another source's migration runs to the end
            terminate_lock_holder(pg_url)
            other.append(subprocess_migrate(second, pg_url, tmp_path / "home_b"))
        return real_load(conn, spec, table, *args)

    monkeypatch.setattr(postgres_load, "_load_once", lock_taken_over_then_load)
    res = migrate(first, pg_url, "--report", str(tmp_path / "a.json"))
    assert other[0].returncode == 0, other[0].stderr[-2000:]
    assert res.exit_code == 1, res.output
    report = json.loads((tmp_path / "a.json").read_text())
    assert report["status"] == "failed"
    assert "lost the migration lock: another migration has taken it" in report["tables"]["items"]["error"]
    assert items_in(pg_url) == [(1, 10, "b1"), (2, 20, "b2")]  # the second source only
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT note FROM public.child ORDER BY id").fetchall() == [("note 1",), ("note 2",)]


def test_a_load_after_the_lock_session_ended_fails_without_committing(tmp_path, pg_url, dagster_home, monkeypatch):
    spec = spec_for(tmp_path, "a", ["a1"])
    real_load = postgres_load._load_once
    killed = []

    def lock_lost_then_load(conn, spec_, table, *args):
        if not killed:
            terminate_lock_holder(pg_url)
            killed.append(table)
        return real_load(conn, spec_, table, *args)

    monkeypatch.setattr(postgres_load, "_load_once", lock_lost_then_load)
    res = migrate(spec, pg_url, "--report", str(tmp_path / "r.json"))
    assert res.exit_code == 1, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert "lost the migration lock: the session holding it" in report["tables"][killed[0]]["error"]
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT count(*) FROM public.items").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM public.child").fetchone()[0] == 0


# Item 3: killed backends mid-COPY; outcome, exit code, report file and `resume` agree.
def kill_during_first_copy(monkeypatch, url: str, *, lock_too: bool) -> list[int]:
    real = postgres_load._encode_batch
    killed = []

    def encode_then_kill(*args, **kwargs):
        out = real(*args, **kwargs)
        if not killed:
            with psycopg.connect(url, autocommit=True) as admin:
                pids = [r[0] for r in admin.execute("SELECT pid FROM pg_stat_activity WHERE query LIKE 'COPY%%'"
                                                    " AND pid <> pg_backend_pid()").fetchall()]
                assert pids
                for pid in pids + ([lock_holder(url)] if lock_too else []):
                    admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            killed.extend(pids)
        return out

    monkeypatch.setattr(postgres_load, "_encode_batch", encode_then_kill)
    return killed


def test_copy_backend_killed_once_is_retried_and_the_run_succeeds(tmp_path, pg_url, dagster_home, monkeypatch):
    spec = spec_for(tmp_path, "a", ["a1", "a2"])
    killed = kill_during_first_copy(monkeypatch, pg_url, lock_too=False)
    res = migrate(spec, pg_url, "--report", str(tmp_path / "r.json"))
    assert killed and res.exit_code == 0, res.output
    assert json.loads((tmp_path / "r.json").read_text())["status"] == "succeeded"
    assert items_in(pg_url) == [(1, 10, "a1"), (2, 20, "a2")]
    resumed = cli("resume", "--spec", str(spec), "--postgres-url", pg_url)
    assert resumed.exit_code == 2 and "nothing to resume: the last migration run" in resumed.output
    assert "succeeded" in resumed.output


def test_copy_and_lock_backends_killed_fail_the_run_with_a_report_and_resume_finishes_it(tmp_path, pg_url,
                                                                                        dagster_home, monkeypatch):
    spec = spec_for(tmp_path, "a", ["a1", "a2"])
    real = postgres_load._encode_batch
    kill_during_first_copy(monkeypatch, pg_url, lock_too=True)
    res = migrate(spec, pg_url, "--report", str(tmp_path / "r.json"))
    assert res.exit_code == 1, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["status"] == "failed"
    assert any("lost the migration lock" in (t["error"] or "") for t in report["tables"].values())
    monkeypatch.setattr(postgres_load, "_encode_batch", real)
    resumed = cli("resume", "--spec", str(spec), "--postgres-url", pg_url, "--report", str(tmp_path / "resumed.json"))
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((tmp_path / "resumed.json").read_text())["status"] == "succeeded"
    assert items_in(pg_url) == [(1, 10, "a1"), (2, 20, "a2")]


# Item 6: a resumed migration's report covers the whole migration; quarantine rows follow the report's id.
def test_resume_after_kill_reports_every_check_and_the_quarantine_under_the_reported_id(tmp_path, pg_url,
                                                                                       make_pg_url, dagster_home):
    spec = spec_for(tmp_path, "a", ["a1", "a2"])
    killed = subprocess_migrate(spec, pg_url, dagster_home, script=KILLED_AT_LOAD, KILL_AT_TABLE="child")
    assert killed.returncode == -9, killed.stderr[-2000:]
    wait_for_no_sessions(pg_url)
    resumed = cli("resume", "--spec", str(spec), "--postgres-url", pg_url, "--report", str(tmp_path / "resumed.json"))
    assert resumed.exit_code == 0, resumed.output
    report = json.loads((tmp_path / "resumed.json").read_text())
    clean = migrate(spec, make_pg_url(), "--report", str(tmp_path / "clean.json"))
    assert clean.exit_code == 0, clean.output
    clean_checks = json.loads((tmp_path / "clean.json").read_text())["checks"]
    assert sorted((c["table"], c["check"]) for c in report["checks"]) == sorted((c["table"], c["check"]) for c in clean_checks)
    assert quarantine_in(pg_url) == [(report["run_id"], "items", "lots")]
    rerun = migrate(spec, pg_url, "--report", str(tmp_path / "rerun.json"))
    assert rerun.exit_code == 0, rerun.output
    assert quarantine_in(pg_url) == [(json.loads((tmp_path / "rerun.json").read_text())["run_id"], "items", "lots")]


def test_resume_refuses_when_another_migration_loaded_its_tables_since(tmp_path, pg_url, dagster_home):
    first, second = spec_for(tmp_path, "a", ["a1", "a2"]), spec_for(tmp_path, "b", ["b1"])
    killed = subprocess_migrate(first, pg_url, dagster_home, script=KILLED_AT_LOAD, KILL_AT_TABLE="child")
    assert killed.returncode == -9, killed.stderr[-2000:]  # items loaded, child not
    wait_for_no_sessions(pg_url)
    other = subprocess_migrate(second, pg_url, tmp_path / "home_b")
    assert other.returncode == 0, other.stderr[-2000:]
    resumed = cli("resume", "--spec", str(first), "--postgres-url", pg_url)
    assert resumed.exit_code == 2
    assert "cannot resume migration" in resumed.output and "another migration has since loaded public.items" in resumed.output
    assert items_in(pg_url) == [(1, 10, "b1")]  # not mixed with the resumed run's tables


def test_resume_with_no_migration_run_says_there_is_nothing_to_resume(tmp_path, pg_url, dagster_home):
    spec = spec_for(tmp_path, "a", ["a1"])
    res = cli("resume", "--spec", str(spec), "--postgres-url", pg_url)
    assert res.exit_code == 2
    assert "nothing to resume: no migration run was started" in res.output
    assert "succeeded" not in res.output


# Item 8: an existing target edited since the last migration is not replaced without --force.
@pytest.mark.parametrize("edit, how", [
    ("UPDATE public.items SET name = 'edited' WHERE id = 1", "rows were inserted, updated or deleted"),
    ("INSERT INTO public.items VALUES (3, 30, 'added')", "rows were inserted, updated or deleted"),
    ("ALTER TABLE public.items ADD COLUMN added_by_user text", "its columns changed"),
])
def test_migrate_refuses_to_replace_tables_edited_since_the_last_migration(tmp_path, pg_url, dagster_home, edit, how):
    spec = spec_for(tmp_path, "a", ["a1", "a2"])
    assert migrate(spec, pg_url).exit_code == 0
    assert migrate(spec, pg_url).exit_code == 0  # unchanged since: a re-run needs no --force
    with psycopg.connect(pg_url) as conn:
        conn.execute(edit)
    edited = items_in(pg_url)
    refused = migrate(spec, pg_url)
    assert refused.exit_code == 2
    assert f"public.items ({how})" in refused.output and "public.child" not in refused.output
    assert "--force" in refused.output and "backup" in refused.output
    assert items_in(pg_url) == edited
    forced = migrate(spec, pg_url, "--force", "--report", str(tmp_path / "r.json"))
    assert forced.exit_code == 0, forced.output
    assert items_in(pg_url) == [(1, 10, "a1"), (2, 20, "a2")]
    assert any("--force: replaced" in n for n in json.loads((tmp_path / "r.json").read_text())["notes"])
    assert migrate(spec, pg_url).exit_code == 0


def test_migrate_refuses_a_non_empty_table_it_did_not_write(tmp_path, pg_url, dagster_home):
    spec = spec_for(tmp_path, "a", ["a1"])
    with psycopg.connect(pg_url) as conn:
        conn.execute("CREATE TABLE public.items (id bigint, qty bigint, name text)")
        conn.execute("INSERT INTO public.items VALUES (7, 7, 'the application''s row')")
        conn.execute("CREATE TABLE public.child (id bigint, item_id bigint, note text)")  # empty: fine
    refused = migrate(spec, pg_url)
    assert refused.exit_code == 2
    assert "public.items (holds rows nova-pipeline did not write)" in refused.output
    assert items_in(pg_url) == [(7, 7, "the application's row")]


def test_migration_lock_admits_one_holder_and_a_stale_token_blocks_nobody(pg_url):
    db = psycopg.conninfo.conninfo_to_dict(pg_url)["dbname"]
    with psycopg.connect(pg_url, autocommit=True) as first, psycopg.connect(pg_url, autocommit=True) as second:
        with run_lock.migration_lock(first) as lock:
            with pytest.raises(run_lock.MigrationLocked,
                               match=rf"^another migration of {db} is running \(pid {first.info.backend_pid}\)$"):
                with run_lock.migration_lock(second):
                    pass
            with psycopg.connect(pg_url) as writer:
                run_lock.assert_held(writer, lock.token)
                with pytest.raises(run_lock.LockLost, match="another migration has taken it"):
                    run_lock.assert_held(writer, "someone else's token")
            assert lock.lost() is None
        with run_lock.migration_lock(second) as again:  # released: taken again, with a new token
            assert again.token != lock.token
            with psycopg.connect(pg_url) as writer, pytest.raises(run_lock.LockLost):
                run_lock.assert_held(writer, lock.token)
