"""`migrate --integrity quick|full`: how much of SQLite's integrity_check the snapshot runs, and what quick misses."""

import json
import sqlite3

import pytest
from click.testing import CliRunner

from nova_pipeline.cli.main import main
from nova_pipeline.extract import snapshot
from nova_pipeline.orchestration.migration import QUICK_NOTE
from nova_pipeline_tests.orchestration.test_migration_e2e import make_foreign_db


def _index_out_of_step(path):
    """A table whose index was built over another column than its schema now says: every page is sound."""
    conn = sqlite3.connect(path)
    conn.executescript("CREATE TABLE t (id INTEGER PRIMARY KEY, a TEXT, b TEXT); CREATE INDEX t_a ON t(a);")
    conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, f"a{i}", f"b{i}") for i in range(50)])
    conn.commit()
    conn.execute("PRAGMA writable_schema = ON")
    conn.execute("UPDATE sqlite_master SET sql = 'CREATE INDEX t_a ON t(b)' WHERE name = 't_a'")
    conn.commit()
    conn.close()


def test_full_checks_every_index_and_quick_does_not(tmp_path, monkeypatch):
    source = tmp_path / "src.sqlite"
    _index_out_of_step(source)
    monkeypatch.delenv(snapshot.INTEGRITY_ENV, raising=False)
    full = snapshot.take_snapshot(source, tmp_path / "full" / "source.sqlite")
    assert not full.ok and any("missing from index t_a" in p for p in full.integrity)
    monkeypatch.setenv(snapshot.INTEGRITY_ENV, "quick")
    quick = snapshot.take_snapshot(source, tmp_path / "quick" / "source.sqlite")
    assert quick.integrity == ["ok"]  # the trade: a row missing from an index goes unseen
    monkeypatch.setenv(snapshot.INTEGRITY_ENV, "fast")
    with pytest.raises(snapshot.SourceError, match="NOVA_INTEGRITY='fast': use one of full, quick"):
        snapshot.take_snapshot(source, tmp_path / "bad" / "source.sqlite")


def test_migrate_integrity_quick_is_stated_in_the_report(tmp_path, pg_url, monkeypatch):
    monkeypatch.setenv(snapshot.INTEGRITY_ENV, "full")  # restored after the CLI sets it
    db = tmp_path / "shop.sqlite"
    make_foreign_db(db)
    runner = CliRunner()
    spec = tmp_path / "shop.yaml"
    assert runner.invoke(main, ["init", "--source", str(db), "--out", str(spec)]).exit_code == 0
    report = tmp_path / "report.json"
    res = runner.invoke(main, ["migrate", "--spec", str(spec), "--postgres-url", pg_url, "--no-backup",
                               "--integrity", "quick", "--report", str(report)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert QUICK_NOTE in json.loads(report.read_text())["notes"]
