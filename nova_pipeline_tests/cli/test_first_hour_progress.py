"""Issue 19 item 5: progress that tells the truth. Each run's bar ends at 100 %, every asset and check counts once
however many partitions it materializes, rows are source rows counted once per table, and without a terminal
one plain line per phase."""

import io
import json
import re
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta

import dagster as dg
from click.testing import CliRunner

from nova_pipeline.orchestration import progress
from nova_pipeline.cli.main import main

DAYS = 4


def _source(tmp_path):
    db = tmp_path / "s.sqlite"
    start = datetime(2024, 3, 1, 6, tzinfo=UTC)
    with sqlite3.connect(db) as conn:
        conn.executescript("""
            CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT);
            CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id), total REAL);
            CREATE TABLE readings (id INTEGER PRIMARY KEY, recorded_at DATETIME, value REAL);
        """)
        conn.executemany("INSERT INTO users VALUES (?, ?)", [(i, f"u{i}@x.io") for i in range(1, 8)])
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?)", [(i, 1 + i % 7, i * 1.5) for i in range(1, 12)])
        conn.executemany("INSERT INTO readings (recorded_at, value) VALUES (?, ?)",
                         [((start + timedelta(hours=5 * i)).strftime("%Y-%m-%d %H:%M:%S"), i / 3)
                          for i in range(DAYS * 24 // 5)])
    return db


def _spec(tmp_path, db):
    spec = tmp_path / "app.yaml"
    spec.write_text(json.dumps({
        "source": {"sqlite": str(db)}, "staging": str(tmp_path / "stg"), "reports": str(tmp_path / "reports"),
        "tables": {
            "users": {"primary_key": ["id"], "columns": {"id": {"type": "bigint"}, "email": {"type": "text"}}},
            "orders": {"primary_key": ["id"], "columns": {"id": {"type": "bigint"}, "user_id": {"type": "bigint"},
                                                          "total": {"type": "double precision"}}},
            "readings": {"primary_key": ["id"], "partition": {"column": "recorded_at", "grain": "day",
                                                                "physical": "month"},
                         "columns": {"id": {"type": "bigint"}, "recorded_at": {"type": "timestamptz",
                                                                                "declared": "DATETIME"},
                                     "value": {"type": "double precision"}}}}}))
    return spec


def _source_rows(db) -> int:
    with sqlite3.connect(db) as conn:
        return sum(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("users", "orders", "readings"))


def test_migrate_without_a_terminal_prints_one_line_per_phase_and_every_run_completes(tmp_path, pg_url, monkeypatch):
    trackers = []

    class Recorded(progress.RunTracker):
        def __init__(self, planned):
            super().__init__(planned)
            trackers.append(self)

    monkeypatch.setattr(progress, "RunTracker", Recorded)
    db = _source(tmp_path)
    res = CliRunner().invoke(main, ["migrate", "--spec", str(_spec(tmp_path, db)), "--postgres-url", pg_url,
                                    "--no-backup", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["status"] == "succeeded"  # stdout holds only the JSON

    # main run, the partition range run (4 days), and the smoke tests + report after it
    assert len(trackers) == 3
    for t in trackers:
        assert t.count == t.total > 0, (t.count, t.total, t.planned - t.done)
    assert sum(t.source_rows for t in trackers) == _source_rows(db) == 7 + 11 + DAYS * 24 // 5
    assert trackers[1].source_rows == DAYS * 24 // 5  # the range run's rows counted once, not once per day

    lines = res.stderr.splitlines()
    assert lines and all(re.match(r"\[ *\d+\.\d s\] \S", line) for line in lines), lines
    phases = [line.split("] ", 1)[1] for line in lines]
    assert not [p for p in phases if "not done" in p]
    assert phases[:3] == ["snapshot of the source taken", "source profiled", "target schemas created"]
    assert "exported: orders, users (18 source rows)" in phases and "exported: readings (19 source rows)" in phases
    assert phases[-2:] == ["smoke tests run", "report written"]


@dg.asset(key=["staging", "raw", "t"], partitions_def=dg.DailyPartitionsDefinition("2024-01-01", end_date="2024-01-04"))
def _raw(context: dg.AssetExecutionContext):
    return dg.MaterializeResult(metadata={"dagster/row_count": 30})


@dg.asset(key=["staging", "clean", "t"], deps=[_raw], partitions_def=_raw.partitions_def)
def _clean(context: dg.AssetExecutionContext):
    return dg.MaterializeResult(metadata={"dagster/row_count": 30})


def test_bar_of_a_range_run_reaches_100_percent_with_rows_counted_once():
    job = dg.Definitions(assets=[_raw, _clean], jobs=[dg.define_asset_job("parts")]).resolve_job_def("parts")
    instance, out, run_id = dg.DagsterInstance.ephemeral(), io.StringIO(), str(uuid.uuid4())
    with progress.run_progress(instance, run_id, progress.planned_items(job), mode="bar", out=out):
        result = job.execute_in_process(instance=instance, run_id=run_id,
                                        tags={"dagster/asset_partition_range_start": "2024-01-01",
                                              "dagster/asset_partition_range_end": "2024-01-03"})
    assert result.success and len(result.get_asset_materialization_events()) == 6  # 3 days × 2 assets
    final = out.getvalue().split("\r")[-1]
    assert "100%" in final and "2/2" in final and "done" in final, final
    assert "30 source rows" in final, final


def test_lines_name_an_unfinished_phase_when_a_run_fails():
    @dg.asset(key=["staging", "raw", "u"])
    def raw_u():
        return dg.MaterializeResult(metadata={"dagster/row_count": 5})

    @dg.asset(key=["staging", "clean", "u"], deps=[raw_u])
    def clean_u():
        raise RuntimeError("boom")

    job = dg.Definitions(assets=[raw_u, clean_u], jobs=[dg.define_asset_job("j")]).resolve_job_def("j")
    instance, out, run_id = dg.DagsterInstance.ephemeral(), io.StringIO(), str(uuid.uuid4())
    with progress.run_progress(instance, run_id, progress.planned_items(job), mode="lines", out=out):
        job.execute_in_process(instance=instance, run_id=run_id, raise_on_error=False)
    phases = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert phases == ["exported: u (5 source rows)", "transformed: 0 tables — 1 of 1 not done"]
