"""Run identity: migrations of different sources from one working directory never share a snapshot or staging
files, one migration at a time holds a source's staging area, and the report states (and verifies) what was
migrated: source path, snapshot time, the copy's sha256 and the source's WAL frame or change counter."""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import psycopg
import pytest
import yaml
from click.testing import CliRunner

from nova_pipeline.appschema import proposal
from nova_pipeline.extract import export, snapshot
from nova_pipeline.orchestration import migration
from nova_pipeline.cli.main import main
from nova_pipeline.core.run_context import RunContext
from nova_pipeline.core.spec import load_spec


def make_source(path: Path, prefix: str, rows: int, wal: bool = False) -> sqlite3.Connection:
    """A source whose `users` rows are named `<prefix><i>`; returns its open connection."""
    conn = sqlite3.connect(path, isolation_level=None)
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT NOT NULL)")
    for i in range(rows):  # one commit per row: a WAL source gets one frame per commit
        conn.execute("INSERT INTO users (name) VALUES (?)", [f"{prefix}{i}"])
    return conn


def write_spec(folder: Path, source: str, name: str) -> Path:
    """A spec next to the source, with the default staging (data/staging) and reports directories."""
    proposed, _ = proposal.propose_spec(folder / source)
    proposed["source"]["sqlite"] = source
    path = folder / name
    path.write_text(yaml.safe_dump(proposed))
    return path


def user_names(url: str) -> list[str]:
    with psycopg.connect(url) as conn:
        return [n for (n,) in conn.execute("SELECT name FROM public.users ORDER BY id")]


def test_a_run_reads_its_own_source_while_another_spec_snapshots_in_the_same_directory(tmp_path, make_pg_url,
                                                                                       monkeypatch):
    make_source(tmp_path / "a.sqlite", "a", 30).close()
    make_source(tmp_path / "b.sqlite", "b", 20).close()
    spec_a = load_spec(write_spec(tmp_path, "a.sqlite", "a.spec.yaml"))
    spec_b = load_spec(write_spec(tmp_path, "b.sqlite", "b.spec.yaml"))
    real_export, interleaved = export.export_table, []

    def export_after_b_started(*args, **kwargs):
        if not interleaved:  # run B takes its snapshot between A's snapshot and A's exports
            interleaved.append(snapshot.take_snapshot(tmp_path / "b.sqlite", snapshot.snapshot_path(spec_b)))
        return real_export(*args, **kwargs)

    monkeypatch.setattr(export, "export_table", export_after_b_started)
    url = make_pg_url()
    rep = migration.migrate(spec_a.spec_path, postgres_url=url, backup=False)
    assert interleaved and rep.status == "succeeded"
    assert user_names(url) == [f"a{i}" for i in range(30)]
    assert rep.snapshot["source"] == str((tmp_path / "a.sqlite").resolve()) and "problem" not in rep.snapshot
    assert rep.tables["users"].source_rows == rep.tables["users"].loaded_rows == 30
    assert snapshot.snapshot_path(spec_a) != snapshot.snapshot_path(spec_b)


def test_two_specs_migrate_at_once_from_one_working_directory(tmp_path, make_pg_url):
    make_source(tmp_path / "a.sqlite", "a", 300).close()
    make_source(tmp_path / "b.sqlite", "b", 200).close()
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}  # both use ./data/.nova/dagster
    runs = {}
    for name in ("a", "b"):
        spec = write_spec(tmp_path, f"{name}.sqlite", f"{name}.spec.yaml")
        url = make_pg_url()
        proc = subprocess.Popen([sys.executable, "-m", "nova_pipeline.cli.main", "migrate", "--spec", spec.name,
                                 "--postgres-url", url, "--no-backup", "--report", f"{name}.report.json"],
                                cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        runs[name] = (proc, url)
    for name, (proc, url) in runs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, (name, err[-2000:])
        report = json.loads((tmp_path / f"{name}.report.json").read_text())
        assert report["status"] == "succeeded"
        assert report["snapshot"]["source"] == str((tmp_path / f"{name}.sqlite").resolve())
        assert report["tables"]["users"]["source_rows"] == report["tables"]["users"]["loaded_rows"]
        assert user_names(url) == [f"{name}{i}" for i in range({"a": 300, "b": 200}[name])]


def test_a_second_migration_of_a_source_in_use_is_refused_with_exit_2(tmp_path, make_pg_url):
    make_source(tmp_path / "a.sqlite", "a", 5).close()
    spec_path = write_spec(tmp_path, "a.sqlite", "a.spec.yaml")
    url = make_pg_url()
    with snapshot.exclusive_area(load_spec(spec_path)) as area:  # as a running migration of the same source holds it
        res = CliRunner().invoke(main, ["migrate", "--spec", str(spec_path), "--postgres-url", url, "--no-backup"])
        assert res.exit_code == 2, res.output
        [line] = res.output.strip().splitlines()
        assert "in use by another migration" in line and str(area) in line and f"pid {os.getpid()}" in line
        assert not (area / "snapshot").exists()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT to_regclass('public.users')").fetchone()[0] is None  # nothing ran
    res = CliRunner().invoke(main, ["migrate", "--spec", str(spec_path), "--postgres-url", url, "--no-backup"])
    assert res.exit_code == 0, res.output  # released when the holder ends


def test_the_report_states_what_was_migrated(tmp_path, pg_url):
    writer = make_source(tmp_path / "live.sqlite", "u", 12, wal=True)  # open: the WAL is not checkpointed away
    spec_path = write_spec(tmp_path, "live.sqlite", "spec.yaml")
    spec_path.write_text(spec_path.read_text() + "keep_staging: true\n")  # the snapshot stays to be hashed here
    frames = snapshot._wal_frames(tmp_path / "live.sqlite")
    assert frames and frames >= 12
    res = CliRunner().invoke(main, ["migrate", "--spec", str(spec_path), "--postgres-url", pg_url, "--no-backup",
                                    "--report", str(tmp_path / "report.json")])
    writer.close()
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "report.json").read_text())
    facts = report["snapshot"]
    copy = Path(facts["path"])
    assert facts["source"] == str((tmp_path / "live.sqlite").resolve())
    assert facts["sha256"] == hashlib.sha256(copy.read_bytes()).hexdigest() and facts["bytes"] == copy.stat().st_size
    assert report["started_at"] <= facts["taken_at"][:19] + "+00:00" <= report["finished_at"]
    assert datetime.fromisoformat(facts["taken_at"]).utcoffset().total_seconds() == 0
    assert facts["source_state"]["journal_mode"] == "wal" and facts["source_state"]["wal_frames"] == frames
    assert Path(facts["staging"]).parent == tmp_path / "data" / "staging"
    markdown = (tmp_path / "data" / "reports" / "migration_report.md").read_text()
    assert f"Source `{facts['source']}` as of {facts['taken_at']}, WAL frame {frames:,}" in markdown
    assert facts["sha256"] in markdown


def test_a_report_fails_when_the_snapshot_is_not_the_one_its_run_took(tmp_path):
    make_source(tmp_path / "a.sqlite", "a", 3).close()
    make_source(tmp_path / "b.sqlite", "b", 2).close()
    spec_a = load_spec(write_spec(tmp_path, "a.sqlite", "a.spec.yaml"))
    ctx_a = RunContext.for_spec(spec_a)
    mine = snapshot.take_snapshot(tmp_path / "a.sqlite", snapshot.snapshot_path(spec_a))
    taken = {"sha256": mine.sha256, "taken_at": mine.taken_at}
    assert "problem" not in snapshot.verified_facts(ctx_a, taken)

    with sqlite3.connect(tmp_path / "a.sqlite") as conn:
        conn.execute("INSERT INTO users (name) VALUES ('later')")
    again = snapshot.take_snapshot(tmp_path / "a.sqlite", snapshot.snapshot_path(spec_a))  # another run's copy
    facts = snapshot.verified_facts(ctx_a, taken)
    assert f"was taken at {again.taken_at} by another run, not at {mine.taken_at} by this one" in facts["problem"]

    snapshot.take_snapshot(tmp_path / "b.sqlite", snapshot.snapshot_path(spec_a))  # another source's copy
    facts = snapshot.verified_facts(ctx_a)
    assert facts["problem"].endswith(f"is of {(tmp_path / 'b.sqlite').resolve()}, not of this spec's source "
                                     f"{(tmp_path / 'a.sqlite').resolve()}")


@pytest.mark.parametrize("staging, expected", [
    ("data/staging", "{folder}/data/staging/{area}"),
    ("s3://bucket/nova?endpoint_override=localhost:9000&scheme=http",
     "s3://bucket/nova/{area}?endpoint_override=localhost:9000&scheme=http"),
])
def test_each_source_file_has_its_own_staging_area(tmp_path, staging, expected):
    for folder in ("x", "y"):
        (tmp_path / folder).mkdir()
        make_source(tmp_path / folder / "app.sqlite", folder, 1).close()
    specs = []
    for folder in ("x", "y"):
        path = write_spec(tmp_path / folder, "app.sqlite", "spec.yaml")
        data = yaml.safe_load(path.read_text())
        path.write_text(yaml.safe_dump({**data, "staging": staging}))
        specs.append(load_spec(path))
    from nova_pipeline.orchestration.defs.assets import staging_of
    from nova_pipeline.core.staging import area_name

    areas = [area_name(tmp_path / f / "app.sqlite") for f in ("x", "y")]
    assert areas[0] != areas[1] and all(a.startswith("app-") for a in areas)
    for folder, spec, area in zip(("x", "y"), specs, areas):
        assert staging_of(spec).uri == expected.format(folder=tmp_path / folder, area=area)
        assert snapshot.snapshot_path(spec).parent.parent.name == area


def test_one_spec_started_twice_at_once_into_two_databases_never_shares_files(tmp_path, make_pg_url):
    make_source(tmp_path / "a.sqlite", "a", 300).close()
    spec = write_spec(tmp_path, "a.sqlite", "a.spec.yaml")
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    runs = []
    for i in range(2):
        url = make_pg_url()
        runs.append((subprocess.Popen([sys.executable, "-m", "nova_pipeline.cli.main", "migrate", "--spec", spec.name,
                                       "--postgres-url", url, "--no-backup", "--report", f"{i}.report.json"],
                                      cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True), url, i))
    codes = []
    for proc, url, i in runs:
        out, err = proc.communicate(timeout=300)
        codes.append(proc.returncode)
        if proc.returncode == 2:  # refused before anything ran
            assert err.strip().endswith("is in use by another migration (pid %d); wait for it to finish, or give "
                                        "this spec its own `staging:`" % runs[1 - i][0].pid), err
            with psycopg.connect(url) as conn:
                assert conn.execute("SELECT to_regclass('public.users')").fetchone()[0] is None
        else:
            assert proc.returncode == 0, err[-2000:]
            assert json.loads((tmp_path / f"{i}.report.json").read_text())["status"] == "succeeded"
            assert user_names(url) == [f"a{n}" for n in range(300)]
    assert 0 in codes


def test_checks_ignore_the_staged_facts_of_another_source_with_a_table_of_the_same_name(tmp_path, pg_url,
                                                                                        monkeypatch):
    import dagster as dg

    from nova_pipeline.load import postgres_load
    from nova_pipeline.orchestration.defs.keys import clean_key
    from nova_pipeline.orchestration.runs import dagster_instance
    from nova_pipeline.validate.source_facts import FACTS_VERSION

    make_source(tmp_path / "a.sqlite", "a", 30).close()
    spec = load_spec(write_spec(tmp_path, "a.sqlite", "a.spec.yaml"))
    real_load = postgres_load.load_table

    def other_run_stages_users_then_load(*args, **kwargs):
        # Between this run's staging/clean/users and its checks, a migration of another source (same Dagster
        # instance) stages its own `users`.
        dagster_instance().report_runless_asset_event(dg.AssetMaterialization(clean_key("users"), metadata={
            "source_facts": dg.MetadataValue.json({"version": FACTS_VERSION, "rows": 20}),
            "path": dg.MetadataValue.path(str(tmp_path / "data" / "staging" / "b-0123456789" / "clean" / "users"))}))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(postgres_load, "load_table", other_run_stages_users_then_load)
    rep = migration.migrate(spec.spec_path, postgres_url=pg_url, backup=False)
    assert rep.status == "succeeded", (rep.notes, [c for c in rep.checks if not c["passed"]])
    assert {c["check"] for c in rep.checks if c["table"] == "postgres/public/users"} >= {"row_reconciliation",
                                                                                         "content_hash"}


def test_resume_verifies_it_continues_on_the_snapshot_its_migration_took(tmp_path, make_pg_url, monkeypatch):
    from nova_pipeline.load import postgres_load

    make_source(tmp_path / "a.sqlite", "a", 30).close()
    spec = load_spec(write_spec(tmp_path, "a.sqlite", "a.spec.yaml"))
    real_load = postgres_load.load_table

    def load_fails(*args, **kwargs):
        raise OSError("connection to the target lost")

    for retaken in (False, True):
        url = make_pg_url()
        monkeypatch.setattr(postgres_load, "load_table", load_fails)
        failed = migration.migrate(spec.spec_path, postgres_url=url, backup=False)
        assert failed.status == "failed" and "problem" not in failed.snapshot
        monkeypatch.setattr(postgres_load, "load_table", real_load)
        if retaken:  # the source changed and its snapshot was taken again since (not by this migration)
            with sqlite3.connect(tmp_path / "a.sqlite") as conn:
                conn.execute("INSERT INTO users (name) VALUES ('later')")
            snapshot.take_snapshot(tmp_path / "a.sqlite", snapshot.snapshot_path(spec))
        rep = migration.migrate(spec.spec_path, postgres_url=url, backup=False, resume=True,
                                resume_run=failed.run_id)
        if retaken:
            assert rep.status == "failed"
            assert f"by another run, not at {failed.snapshot['taken_at']} by this one" in rep.snapshot["problem"]
        else:
            assert rep.status == "succeeded", rep.notes
            assert "problem" not in rep.snapshot and rep.snapshot["taken_at"] == failed.snapshot["taken_at"]
            assert user_names(url) == [f"a{i}" for i in range(30)]


def test_the_report_holds_its_own_smoke_tests_and_timings_not_those_of_another_spec_run_meanwhile(tmp_path, pg_url,
                                                                                      monkeypatch):
    import dagster as dg

    from nova_pipeline.orchestration.defs.keys import SMOKE_TESTS, raw_key
    from nova_pipeline.orchestration.runs import dagster_instance

    make_source(tmp_path / "a.sqlite", "a", 30).close()
    path = write_spec(tmp_path, "a.sqlite", "a.spec.yaml")
    data = yaml.safe_load(path.read_text())
    data["smoke_tests"] = [{"name": "thirty users", "sql": "SELECT count(*) FROM public.users", "expect_value": 30}]
    path.write_text(yaml.safe_dump(data))
    spec = load_spec(path)
    real_reconcile = migration.reconcile

    def other_spec_smoke_tests_then_reconcile(*args, **kwargs):
        dagster_instance().report_runless_asset_event(dg.AssetMaterialization(SMOKE_TESTS, metadata={
            "checks": dg.MetadataValue.json([{"table": "smoke/postgres", "check": "twenty users", "passed": False,
                                              "severity": "ERROR", "detail": "of the other source"}])}))
        dagster_instance().report_runless_asset_event(dg.AssetMaterialization(raw_key("users"), metadata={
            "seconds": 999.0}))
        return real_reconcile(*args, **kwargs)

    monkeypatch.setattr(migration, "reconcile", other_spec_smoke_tests_then_reconcile)
    rep = migration.migrate(spec.spec_path, postgres_url=pg_url, backup=False)
    assert rep.status == "succeeded", rep.checks
    smoke = [c for c in rep.checks if c["table"].startswith("smoke")]
    assert [(c["table"], c["check"], c["passed"]) for c in smoke] == [("smoke/postgres", "thirty users", True)]
    assert 0 < rep.tables["users"].seconds < 999  # its own export's time, not the other run's
