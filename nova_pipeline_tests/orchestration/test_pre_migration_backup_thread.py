"""The pre-migration backup runs beside the snapshot and Dagster's imports, and is complete before the run starts."""

import threading
import time

from click.testing import CliRunner

from nova_pipeline.backup.errors import BackupKeyError
from nova_pipeline.cli.main import main
from nova_pipeline.orchestration import migration, runs
from nova_pipeline_tests.orchestration.test_migration_e2e import make_foreign_db


def _migrate_with(tmp_path, pg_url, monkeypatch, backup):
    """migrate (backup on) with `backup` standing in for the pre-migration backup; the events it and the run saw."""
    events = []
    real_run = runs.run_migration

    def run_migration(*args, **kwargs):
        events.append(("run", time.monotonic()))
        return real_run(*args, **kwargs)

    monkeypatch.setattr(runs, "run_migration", run_migration)
    monkeypatch.setattr(migration, "_pre_migration_backup", lambda spec, pg, mongo: backup(events))
    db, spec_path = tmp_path / "shop.sqlite", tmp_path / "shop.yaml"
    make_foreign_db(db)
    assert CliRunner().invoke(main, ["init", "--source", str(db), "--out", str(spec_path)]).exit_code == 0
    try:
        return migration.migrate(str(spec_path), postgres_url=pg_url), events
    except BackupKeyError:
        return None, events


def test_backup_runs_in_its_own_thread_and_finishes_before_the_run(tmp_path, pg_url, monkeypatch):
    def backup(events):
        events.append(("thread", threading.current_thread().name))
        time.sleep(0.3)
        events.append(("backed up", time.monotonic()))
        return "pre-migration backup: test"

    rep, events = _migrate_with(tmp_path, pg_url, monkeypatch, backup)
    seen = dict(events)
    assert rep.status == "succeeded"
    assert seen["thread"] == "pre-migration-backup"
    assert seen["backed up"] <= seen["run"]
    assert "pre-migration backup: test" in rep.notes


def test_a_failed_backup_stops_the_migration_before_the_run(tmp_path, pg_url, monkeypatch):
    def backup(events):
        raise BackupKeyError("pre-migration backup: no key")

    rep, events = _migrate_with(tmp_path, pg_url, monkeypatch, backup)
    assert rep is None and not events
