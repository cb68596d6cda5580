"""pipeline.partition_range and partition_checks: a range of days of one table, in plain Python, no Dagster."""

import sqlite3

from nova_pipeline.core.run_context import RunContext
from nova_pipeline.core.spec import parse_spec
from nova_pipeline.extract import snapshot
from nova_pipeline.pipeline.context import RunIds
from nova_pipeline.pipeline.partition_checks import POSTGRES_CHECKS, range_checks
from nova_pipeline.pipeline.partition_range import UNPLACED, load_partition_range
from nova_pipeline.pipeline.table import CLEAN, RAW, TARGET
from nova_pipeline_tests.pipeline.targets import Postgres


def test_a_range_of_days_is_loaded_checked_and_its_unreadable_rows_quarantined(tmp_path, pg_url):
    db = tmp_path / "app.sqlite"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE readings (id INTEGER PRIMARY KEY, at DATETIME, value REAL)")
        conn.executemany("INSERT INTO readings (at, value) VALUES (?, ?)",
                         [(f"2024-03-0{1 + i % 3}T0{i % 10}:00:00Z", i) for i in range(30)] + [("soon", 0)])
    spec = parse_spec({"source": {"sqlite": str(db)}, "staging": str(tmp_path / "staging"), "tables": {"readings": {
        "primary_key": ["id"], "partition": {"column": "at", "grain": "day"},
        "columns": {"id": {"type": "bigint"}, "at": {"type": "timestamptz"}, "value": {"type": "double precision"}}}}})
    ctx, pg = RunContext.for_spec(spec), Postgres(pg_url)
    snapshot.take_snapshot(db, ctx.snapshot_path)
    keys = ["2024-03-01", "2024-03-02", "2024-03-03"]
    done = load_partition_range(ctx, "readings", keys, source=ctx.local_snapshot(), postgres=pg, mongo=None,
                                run=RunIds("run-1", "migration-1"))
    assert done.rows[RAW] == {**dict.fromkeys(keys, 10), UNPLACED: 1}
    assert done.rows[CLEAN] == done.rows[TARGET] == dict.fromkeys(keys, 10)
    assert ctx.staging.row_count("quarantine", "readings", UNPLACED) == 1
    with pg.connect() as conn:
        assert conn.execute("SELECT count(*) FROM public.readings").fetchone()[0] == 30
    per_key = range_checks(spec, "readings", ctx.staging, keys, pg, None, ctx.facts)
    assert {res.check for res in per_key[keys[0]]} == set(POSTGRES_CHECKS)
    assert all(res.passed for results in per_key.values() for res in results)
