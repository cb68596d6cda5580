"""Partitioned telemetry loads through Dagster: windows, idempotence, month partitions, sensor, schedule, CLI, MongoDB."""

import sqlite3
import threading
from contextlib import closing
from datetime import UTC, datetime, timedelta

import dagster as dg
import psycopg
import pytest
import yaml
from click.testing import CliRunner

from nova_pipeline.extract import export, introspect, snapshot
from nova_pipeline.load import partitions, postgres_load
from nova_pipeline.transform import transform
from nova_pipeline.cli.main import main
from nova_pipeline.core.connections import mongo_client
from nova_pipeline.orchestration.defs import assets as A
from nova_pipeline.orchestration.defs import partitions as P
from nova_pipeline.orchestration.defs.build import build_definitions
from nova_pipeline.orchestration.defs.resources import PostgresResource
from nova_pipeline.orchestration.partition_runs import load_all_partitions, load_partition
from nova_pipeline.pipeline import partition_checks as PC
from nova_pipeline.pipeline import partition_range as PR
from nova_pipeline.pipeline import source
from nova_pipeline.core.spec import load_spec
from nova_pipeline.core.staging import Staging
from nova_pipeline.validate.source_facts import facts_shape, source_facts

T0 = datetime(2024, 1, 30, tzinfo=UTC)  # four days across the January → February boundary
RAW = A.raw_key("telemetry")


def render(t: datetime, k: int):
    """One instant in the k-th of the forms the app stored over the years (all read by the default casts)."""
    local = t + timedelta(hours=-5)
    return [t.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z", t.strftime("%Y-%m-%d %H:%M:%S"), int(t.timestamp()),
            int(t.timestamp() * 1000), local.strftime("%Y-%m-%dT%H:%M:%S-05:00"), t.timestamp(),
            (t + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%S+0200"), str(int(t.timestamp()))][k % 8]


def readings(n_per_day: int = 60) -> list[tuple]:
    """(drone_id, recorded_at, value, day) rows; many within seconds of midnight, in every form."""
    rows = []
    for d in range(4):
        midnight = T0 + timedelta(days=d)
        for i in range(n_per_day):
            offset = [timedelta(seconds=i), timedelta(days=1) - timedelta(seconds=i + 1), timedelta(minutes=37 * i)][i % 3]
            t = midnight + offset
            rows.append((i % 3 + 1, render(t, i + d), float(i), t.date().isoformat()))
    return rows


def make_source(path, rows) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE telemetry (id INTEGER PRIMARY KEY, drone_id INTEGER NOT NULL, "
                     "recorded_at DATETIME, value REAL)")
        conn.executemany("INSERT INTO telemetry (drone_id, recorded_at, value) VALUES (?, ?, ?)", [r[:3] for r in rows])
        conn.execute("INSERT INTO telemetry (drone_id, recorded_at, value) VALUES (9, 'not a time', 0)")
    return str(path)


def write_spec(tmp_path, target: str = "postgres") -> str:
    table = {"target": target, "primary_key": ["id", "recorded_at"],
             "partition": {"column": "recorded_at", "grain": "day", "physical": "month"},
             "columns": {"id": {"type": "bigint", "declared": "INTEGER", "nullable": False},
                         "drone_id": {"type": "bigint", "declared": "INTEGER", "nullable": False},
                         "recorded_at": {"type": "timestamptz", "declared": "DATETIME", "nullable": False},
                         "value": {"type": "double precision", "declared": "REAL"}}}
    if target == "postgres":
        table["table"] = "telemetry.readings"
    else:
        table.update(primary_key=["id"], timeseries={"time_field": "recorded_at", "meta_field": "drone_id"})
    spec = {"source": {"sqlite": "src.sqlite"}, "staging": "staging", "reports": "reports",
            "targets": {"postgres": {"schema": "core"}, **({"mongo": {"database": "logs"}} if target == "mongo" else {})},
            "tables": {"telemetry": table}}
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


@pytest.fixture
def setup(tmp_path):
    rows = readings()
    make_source(tmp_path / "src.sqlite", rows)
    spec_path = write_spec(tmp_path)
    return load_spec(spec_path), spec_path, rows


def expected_per_day(rows) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r[3]] = out.get(r[3], 0) + 1
    return out


def run(spec, spec_path, pg_url, key=None, tags=None, mongo_uri=None):
    job = build_definitions(spec, spec_path, postgres_url=pg_url, mongo_uri=mongo_uri).resolve_job_def(P.JOB)
    return job.execute_in_process(partition_key=key, tags=tags, instance=dg.DagsterInstance.ephemeral(),
                                  raise_on_error=False)


def pg_days(pg_url) -> dict[str, int]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT (recorded_at AT TIME ZONE 'UTC')::date::text, count(*), count(DISTINCT id) "
                            "FROM telemetry.readings GROUP BY 1").fetchall()
    assert all(n == distinct for _, n, distinct in rows), "duplicated readings"
    return {d: n for d, n, _ in rows}


def test_two_partitions_then_rerun_one_no_duplicates_and_next_month_created(setup, pg_url):
    spec, spec_path, rows = setup
    want = expected_per_day(rows)
    for key in ("2024-01-31", "2024-02-01", "2024-01-31"):
        res = run(spec, spec_path, pg_url, key=key)
        assert res.success
        evals = res.get_asset_check_evaluations()
        assert {e.check_name for e in evals} == set(P.POSTGRES_CHECKS) and all(e.passed for e in evals)
        assert {e.partition for e in evals} == {key}
    assert pg_days(pg_url) == {d: want[d] for d in ("2024-01-31", "2024-02-01")}
    with psycopg.connect(pg_url) as conn:
        children = {r[0] for r in conn.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                                               "WHERE i.inhparent = 'telemetry.readings'::regclass")}
    assert children == {"readings_p2024_01", "readings_p2024_02"}


@pytest.mark.parametrize("appended_in_day_order", [False, True])
def test_sum_of_partitions_equals_a_full_load(setup, pg_url, make_pg_url, tmp_path, monkeypatch,
                                              appended_in_day_order):
    spec, spec_path, rows = setup
    if appended_in_day_order:  # each day is then its own rowid span: days are read from the rowid alone
        rows = sorted(rows, key=lambda r: r[3])
        (tmp_path / "src.sqlite").unlink()
        make_source(tmp_path / "src.sqlite", rows)
    monkeypatch.setattr(PR, "RANGE_CHUNK", 3)  # the range run exports its 4 days in two queries
    days = range(partitions.day_number(T0.date()), partitions.day_number(T0.date()) + 4)
    cheap = partitions.rowid_day_expression(tmp_path / "src.sqlite", spec, "telemetry", days)
    assert (cheap is not None) == appended_in_day_order
    [outcome] = load_all_partitions(spec, spec_path, postgres_url=pg_url, read_snapshot=False)
    assert outcome.success, outcome.errors
    assert pg_days(pg_url) == expected_per_day(rows)
    assert {c["check"] for c in outcome.checks} == set(P.POSTGRES_CHECKS) and all(c["passed"] for c in outcome.checks)
    stg = A.staging_of(spec)
    assert stg.row_count("quarantine", "telemetry") == 1  # 'not a time' has no window: quarantined, not lost

    full_url, full = make_pg_url(), Staging(str(tmp_path / "full"))
    export.export_table(str(tmp_path / "src.sqlite"), "telemetry", list(spec.tables["telemetry"].columns), full)
    transform.transform_table(spec, "telemetry", full)
    with psycopg.connect(full_url) as conn:
        from nova_pipeline.load import postgres_ddl
        postgres_ddl.create_tables(conn, spec)
        conn.commit()
    postgres_load.load_table(full_url, spec, "telemetry", full)
    assert full.row_count("quarantine", "telemetry") == 1
    query = "SELECT id, drone_id, recorded_at, value FROM telemetry.readings ORDER BY id"
    with psycopg.connect(pg_url) as a, psycopg.connect(full_url) as b:
        by_partition, by_full = a.execute(query).fetchall(), b.execute(query).fetchall()
    assert len(by_partition) == len(rows) and by_partition == by_full


def test_range_load_sends_partitions_as_transforms_finish_and_rolls_back_when_one_fails(setup, pg_url, monkeypatch):
    spec, spec_path, rows = setup
    days = sorted(expected_per_day(rows))
    first_day_sent, real_transform, real_read = threading.Event(), PR.transform_window, Staging.read_batches

    def transform(spec, table, stg, key, run_id):
        if key == days[-1]:  # the last transform waits until the load has sent the first day
            assert first_day_sent.wait(30), "the range load waited for every transform"
        if key == days[2] and fail:
            raise ValueError(f"cannot transform {key}")
        return real_transform(spec, table, stg, key, run_id)

    def read_batches(self, kind, table, partition=None, columns=None):
        if kind == "clean" and partition == days[0]:
            first_day_sent.set()
        if kind == "clean" and partition == days[3]:
            sent_after_failure.append(partition)
        return real_read(self, kind, table, partition, columns)

    monkeypatch.setattr(PR, "transform_window", transform)
    monkeypatch.setattr(Staging, "read_batches", read_batches)
    fail, sent_after_failure = False, []
    [outcome] = load_all_partitions(spec, spec_path, postgres_url=pg_url, read_snapshot=False)
    assert outcome.success, outcome.errors
    assert pg_days(pg_url) == expected_per_day(rows)

    fail, sent_after_failure = True, []
    first_day_sent.clear()
    [outcome] = load_all_partitions(spec, spec_path, postgres_url=pg_url, read_snapshot=False)
    assert not outcome.success and any(f"cannot transform {days[2]}" in e for e in outcome.errors.values())
    assert sent_after_failure == []  # the load stopped at the failed day
    assert pg_days(pg_url) == expected_per_day(rows)  # and its transaction left the first load intact


def test_range_load_sends_days_while_later_ones_export_and_rolls_back_when_the_export_fails(setup, pg_url,
                                                                                           monkeypatch):
    spec, spec_path, rows = setup
    days = sorted(expected_per_day(rows))
    first_day_sent, real_export, real_read = threading.Event(), export.export_days, Staging.read_batches
    monkeypatch.setattr(PR, "RANGE_CHUNK", 1)  # one export query per day

    def export_days(sqlite_path, table, columns, staging, *, keys, **kw):
        if days[-1] in keys.values():  # the last day is exported only once the load has sent the first
            assert first_day_sent.wait(30), "the range load waited for the whole export"
        if days[2] in keys.values() and fail:
            assert first_day_sent.wait(30), "the range load waited for the whole export"
            raise OSError(f"disk full exporting {days[2]}")
        return real_export(sqlite_path, table, columns, staging, keys=keys, **kw)

    def read_batches(self, kind, table, partition=None, columns=None):
        if kind == "clean" and partition == days[0]:
            first_day_sent.set()
        return real_read(self, kind, table, partition, columns)

    monkeypatch.setattr(export, "export_days", export_days)
    monkeypatch.setattr(Staging, "read_batches", read_batches)
    fail = False
    [outcome] = load_all_partitions(spec, spec_path, postgres_url=pg_url, read_snapshot=False)
    assert outcome.success, outcome.errors
    assert pg_days(pg_url) == expected_per_day(rows)

    fail = True
    first_day_sent.clear()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM telemetry.readings WHERE (recorded_at AT TIME ZONE 'UTC')::date::text = %s", (days[0],))
    [outcome] = load_all_partitions(spec, spec_path, postgres_url=pg_url, read_snapshot=False)
    assert not outcome.success and any(f"disk full exporting {days[2]}" in e for e in outcome.errors.values())
    # The load had sent the first day again; its transaction rolled back, so that day is still missing.
    assert pg_days(pg_url) == {d: n for d, n in expected_per_day(rows).items() if d != days[0]}


def test_range_checks_pass_in_one_pass_and_a_corrupt_day_is_named_by_partition(setup, pg_url, tmp_path):
    spec, spec_path, rows = setup
    [outcome] = load_all_partitions(spec, spec_path, postgres_url=pg_url, read_snapshot=False)
    assert outcome.success, outcome.errors
    keys, stg = sorted(expected_per_day(rows)), A.staging_of(spec)
    shape, facts = facts_shape(spec, "telemetry", stg, partition=keys), source_facts(spec, "telemetry", stg, partition=keys)
    assert shape == {k: facts[k] for k in ("table", "partition", "primary_key", "column_order")} | {
        "columns": {c: {"kind": f["kind"]} for c, f in facts["columns"].items()}}  # what the target scan needs
    with psycopg.connect(pg_url, autocommit=True) as conn:
        per_key = PC.postgres_range_checks(conn, spec, "telemetry", stg, keys)
        assert set(per_key) == set(keys) and all(res.passed for results in per_key.values() for res in results)
        assert {res.check for res in per_key[keys[0]]} == set(P.POSTGRES_CHECKS)
        victim = conn.execute("SELECT id FROM telemetry.readings WHERE recorded_at >= '2024-01-31' "
                              "AND recorded_at < '2024-02-01' ORDER BY id LIMIT 1").fetchone()[0]
        conn.execute("UPDATE telemetry.readings SET value = value + 1 WHERE id = %s", (victim,))
        assert PC.postgres_range_checks(conn, spec, "telemetry", stg, keys) is None  # falls back to each partition
    failed = {key: [res for res in PC.partition_checks(spec, "telemetry", stg, key, PostgresResource(url_override=pg_url), None)
                    if not res.passed] for key in keys}
    assert [key for key, bad in failed.items() if bad] == ["2024-01-31"]
    assert any(f"id={victim}" in res.detail for res in failed["2024-01-31"])


def test_sensor_requests_partitions_of_late_rows_and_they_load(setup, pg_url, tmp_path):
    spec, spec_path, rows = setup
    defs = build_definitions(spec, spec_path)
    sensor = defs.resolve_sensor_def("telemetry_new_readings")
    first = sensor.evaluate_tick(dg.build_sensor_context(cursor=None, definitions=defs))
    assert not first.run_requests and first.cursor
    assert not sensor.evaluate_tick(dg.build_sensor_context(cursor=first.cursor, definitions=defs)).run_requests
    with sqlite3.connect(tmp_path / "src.sqlite") as conn:  # a late reading for a past day, in epoch ms
        conn.execute("INSERT INTO telemetry (drone_id, recorded_at, value) VALUES (7, ?, 1.5)",
                     (int(datetime(2024, 1, 31, 23, 59, 59, tzinfo=UTC).timestamp() * 1000),))
    tick = sensor.evaluate_tick(dg.build_sensor_context(cursor=first.cursor, definitions=defs))
    assert [r.partition_key for r in tick.run_requests] == ["2024-01-31"]
    assert tick.run_requests[0].run_key.startswith("telemetry:2024-01-31:")
    assert set(tick.run_requests[0].asset_selection) == {RAW, A.clean_key("telemetry"), A.target_key(spec, "telemetry")}
    assert run(spec, spec_path, pg_url, key=tick.run_requests[0].partition_key).success
    assert pg_days(pg_url) == {"2024-01-31": expected_per_day(rows)["2024-01-31"] + 1}


def test_schedule_requests_yesterdays_partition(setup):
    spec, spec_path, _ = setup
    defs = build_definitions(spec, spec_path)
    schedule = defs.resolve_schedule_def(f"{P.JOB}_daily")
    tick = schedule.evaluate_tick(dg.build_schedule_context(
        scheduled_execution_time=datetime(2024, 2, 2, 0, 15, tzinfo=UTC), repository_def=defs.get_repository_def()))
    assert [r.partition_key for r in tick.run_requests] == ["2024-02-01"]


def test_code_location_keeps_the_graph_and_separates_the_jobs(setup):
    spec, spec_path, _ = setup
    defs = build_definitions(spec, spec_path)
    dg.Definitions.validate_loadable(defs)
    tkey = A.target_key(spec, "telemetry")
    graph = defs.resolve_asset_graph()
    assert {RAW, A.clean_key("telemetry"), tkey} <= graph.get_all_asset_keys()
    assert graph.get(tkey).partitions_def.get_first_partition_key() == "2024-01-30"
    assert graph.get(tkey).partitions_def.has_partition_key(datetime.now(UTC).date().isoformat())
    assert tkey not in defs.resolve_job_def("migrate").asset_layer.executable_asset_keys
    assert tkey in defs.resolve_job_def(P.JOB).asset_layer.executable_asset_keys
    assert {k.name for k in graph.asset_check_keys if k.asset_key == tkey} == set(P.POSTGRES_CHECKS)


def test_load_partition_cli(setup, pg_url):
    spec, spec_path, rows = setup
    runner = CliRunner()
    res = runner.invoke(main, ["load-partition", "--spec", spec_path, "--table", "telemetry", "--partition", "2024-02-01",
                               "--postgres-url", pg_url], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    assert "PASS" in res.output and "FAIL" not in res.output
    assert pg_days(pg_url) == {"2024-02-01": expected_per_day(rows)["2024-02-01"]}
    for args, message in [(["--table", "nope", "--partition", "2024-02-01"], "not a partitioned table"),
                          (["--table", "telemetry", "--partition", "2023-01-01"], "no partition '2023-01-01'")]:
        res = runner.invoke(main, ["load-partition", "--spec", spec_path, *args, "--postgres-url", pg_url])
        assert res.exit_code == 2 and message in res.output


def test_mongo_time_series_partitions(tmp_path, mongo_uri):
    rows = readings(20)
    make_source(tmp_path / "src.sqlite", rows)
    spec_path = write_spec(tmp_path, "mongo")
    spec = load_spec(spec_path)
    for key in ("2024-01-31", "2024-02-01", "2024-01-31"):
        out = load_partition(spec, spec_path, "telemetry", key, mongo_uri=mongo_uri)
        assert out.success, out.errors
        assert {c["check"] for c in out.checks} == set(P.MONGO_CHECKS) and all(c["passed"] for c in out.checks)
    docs = mongo_client(mongo_uri)["logs"]["telemetry"].find({}, {"recorded_at": 1})
    per_day: dict[str, int] = {}
    for d in docs:
        day = d["recorded_at"].date().isoformat()
        per_day[day] = per_day.get(day, 0) + 1
    want = expected_per_day(rows)
    assert per_day == {d: want[d] for d in ("2024-01-31", "2024-02-01")}


def test_profile_records_the_days_of_each_partitioned_table_and_counts_it_in_parts(setup, pg_url, monkeypatch):
    spec, spec_path, rows = setup
    monkeypatch.setattr(source, "PROFILE_PART_ROWS", 50)  # 241 rows: counted in 5 rowid ranges
    job = build_definitions(spec, spec_path, postgres_url=pg_url).resolve_job_def("migrate")
    result = job.execute_in_process(instance=dg.DagsterInstance.ephemeral(), asset_selection=[A.SNAPSHOT, A.PROFILE])
    [profile] = [m for m in result.get_asset_materialization_events() if m.asset_key == A.PROFILE]
    days = profile.materialization.metadata["partition_days"].value["telemetry"]
    per_day = expected_per_day(rows)
    assert days == {"first_day": min(per_day), "last_day": max(per_day), "days": len(per_day), "rows_without_day": 1}
    with closing(sqlite3.connect(snapshot.snapshot_path(spec))) as conn:
        table = introspect.read_schema(conn).tables[0]
        whole = introspect.storage_counts(conn, "telemetry", [c.name for c in table.columns], rowid_alias="id")
        assert len(introspect.rowid_ranges(conn, table, len(rows) + 1, source.PROFILE_PART_ROWS)) == 5
    assert profile.materialization.metadata["storage_classes"].value["telemetry"] == whole  # the parts add up
