"""The SQLite source-change sensor."""

import sqlite3

import dagster as dg

from nova_pipeline.defs.sensors import build_source_change_sensor
from nova_pipeline.spec import parse_spec


def test_sensor_requests_one_run_per_change_including_wal_commits(tmp_path):
    db = tmp_path / "app.sqlite"
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    conn.commit()
    spec = parse_spec({"source": {"sqlite": str(db)}, "tables": {"t": {"columns": {"id": {"type": "bigint"}}}}})
    job = dg.define_asset_job("migrate", selection=dg.AssetSelection.all())
    sensor = build_source_change_sensor(spec, job)
    ctx = dg.build_sensor_context(cursor=None)
    first = sensor.evaluate_tick(ctx)
    assert not first.run_requests and first.cursor
    ctx = dg.build_sensor_context(cursor=first.cursor)
    assert not sensor.evaluate_tick(ctx).run_requests
    conn.execute("INSERT INTO t VALUES (1)")
    conn.commit()
    changed = sensor.evaluate_tick(dg.build_sensor_context(cursor=first.cursor))
    assert len(changed.run_requests) == 1 and changed.cursor != first.cursor
    assert changed.run_requests[0].tags["nova/trigger"] == "sqlite_change"
