"""A CLI migrate builds the migration report once: the migration_report asset counts the tables, and
`reconcile` reads what it stored instead of counting them again."""

import sqlite3

from nova_pipeline.report import report
from nova_pipeline_tests.cli_runs import init_and_migrate


def _source(path):
    with sqlite3.connect(path) as conn:  # tables in other than alphabetical order: the report keeps the spec's
        conn.execute("CREATE TABLE zones (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany("INSERT INTO zones (name) VALUES (?)", [(f"zone {i}",) for i in range(20)])
        conn.execute("CREATE TABLE readings (id INTEGER PRIMARY KEY, recorded_at DATETIME NOT NULL, value REAL)")
        conn.executemany("INSERT INTO readings (recorded_at, value) VALUES (?, ?)",
                         [(f"2024-03-0{1 + i % 3}T10:00:00Z", float(i)) for i in range(30)])
    return path


def _partition_readings(spec: dict) -> None:
    spec["tables"]["readings"]["partition"] = {"column": "recorded_at", "grain": "day"}


def test_a_migrate_builds_the_report_once_and_reports_what_the_asset_counted(tmp_path, pg_url, monkeypatch):
    monkeypatch.setenv("NOVA_EXECUTOR", "in_process")  # the builds are counted in this process
    builds, real_build = [], report.build_report

    def counted_build(*args, **kwargs):
        builds.append(kwargs.get("run_id"))
        return real_build(*args, **kwargs)

    monkeypatch.setattr(report, "build_report", counted_build)
    run = init_and_migrate(tmp_path, _source(tmp_path / "app.sqlite"), pg_url, edit=_partition_readings)
    assert run.res.exit_code == 0, run.res.output
    assert len(builds) == 1
    tables = run.report["tables"]
    assert {n: (t["source_rows"], t["loaded_rows"], t["status"]) for n, t in tables.items()} == {
        "zones": (20, 20, "loaded"), "readings": (30, 30, "loaded")}
    assert list(tables) == list(run.spec.tables) == ["zones", "readings"]
    assert all(t["seconds"] for t in tables.values())  # this migration's timings, set by reconcile
    assert run.report["run_id"] == builds[0]
