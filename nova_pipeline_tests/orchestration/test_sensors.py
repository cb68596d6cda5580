"""The SQLite source-change sensor."""

import sqlite3

import dagster as dg

from nova_pipeline.orchestration.defs.sensors import build_source_change_sensor
from nova_pipeline.core.spec import parse_spec


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


def _finished_run(instance, job_name: str, tags: dict[str, str]):
    """A successful run record of `job_name` (a trivial op stands in for the real work)."""
    @dg.op
    def step():
        return None

    @dg.job(name=job_name)
    def stand_in():
        step()

    result = stand_in.execute_in_process(instance=instance, tags=tags)
    return result.dagster_run, result.get_run_success_event()


def _evaluate(defs, name, instance, run, event):
    sensor = next(s for s in defs.sensors if s.name == name)
    ctx = dg.build_run_status_sensor_context(sensor_name=name, dagster_instance=instance, dagster_run=run,
                                             dagster_event=event)
    return sensor(ctx)


def test_ui_migration_chains_partition_loads_then_the_report():
    from pathlib import Path

    from nova_pipeline.orchestration.defs.build import build_definitions
    from nova_pipeline.core.spec import load_spec

    spec_path = Path(__file__).parents[2] / "data" / "nova.spec.yaml"
    defs = build_definitions(load_spec(spec_path), str(spec_path))
    instance = dg.DagsterInstance.ephemeral()
    run, event = _finished_run(instance, "migrate", {})
    requests = _evaluate(defs, "partitions_after_migration", instance, run, event)
    assert [r.job_name for r in requests] == ["telemetry_partitions"]
    assert requests[0].tags["dagster/asset_partition_range_start"] == "2024-01-01"
    assert requests[0].tags["nova/after_migration"] == run.run_id

    cli_run, cli_event = _finished_run(instance, "migrate", {"nova/cli": "1"})
    assert isinstance(_evaluate(defs, "partitions_after_migration", instance, cli_run, cli_event), dg.SkipReason)

    part_run, part_event = _finished_run(instance, "telemetry_partitions", {"nova/after_migration": run.run_id})
    report = _evaluate(defs, "report_after_partitions", instance, part_run, part_event)
    assert {k.to_user_string() for k in report.asset_selection} == {"validation/smoke_tests", "reports/migration_report"}


def test_each_follow_up_of_a_migration_has_its_sensor():
    from pathlib import Path

    from nova_pipeline.core.spec import load_spec
    from nova_pipeline.orchestration import follow_ups as F
    from nova_pipeline.orchestration.defs.build import build_definitions

    spec_path = Path(__file__).parents[2] / "data" / "nova.spec.yaml"
    defs = build_definitions(load_spec(spec_path), str(spec_path))
    sensors = {s.name: s for s in defs.sensors}
    for follow_up in (F.PARTITION_LOADS, F.REFRESH, F.BACKUP):
        assert follow_up.description in sensors[follow_up.sensor].description
