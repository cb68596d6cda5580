"""Time-partitioned loads of the tables with `partition`: assets, per-partition checks, job and schedule.

(No `from __future__ import annotations`: Dagster reads the context, config and resource annotations at runtime.)

Each partitioned table keeps the asset keys of defs/assets.build_table_assets
(raw, clean, target), so the asset graph is the same; only the assets are
time-partitioned. One run materializes one partition or, through a backfill
(BackfillPolicy.single_run), a whole range, through
nova_pipeline.pipeline.partition_range; its checks come from
nova_pipeline.pipeline.partition_checks. The new-readings sensor is in
defs/sensors.py.
"""

import warnings
from datetime import timedelta, timezone

import dagster as dg
from pydantic import Field

from nova_pipeline.core import results as r
from nova_pipeline.core.results import CheckResult
from nova_pipeline.core.spec import Spec
from nova_pipeline.load import partitions
from nova_pipeline.orchestration.defs import assets as A
from nova_pipeline.orchestration.defs import keys as K
from nova_pipeline.orchestration.defs.checks import check_result
from nova_pipeline.orchestration.defs.resources import MongoResource, Nova, PostgresResource
from nova_pipeline.orchestration.defs.sensors import build_partition_sensor
from nova_pipeline.pipeline.context import rate
from nova_pipeline.pipeline.partition_checks import MONGO_CHECKS, POSTGRES_CHECKS, WINDOW_BOUNDS, range_checks
from nova_pipeline.pipeline.partition_range import (first_day, load_partition_range, partitioned_tables,
                                                    source_path)

JOB = "telemetry_partitions"
DESCRIPTIONS = {
    r.ROW_RECONCILIATION: "Rows of `{t}` in this partition's window: source = loaded + quarantined, exactly.",
    r.COLUMN_AGGREGATES: "Per column of `{t}` in this window: count, NULLs, min, max and sum equal the source's.",
    r.CONTENT_HASH: "Per-bucket hashes of the window's rows of `{t}` equal the source's; differing rows named by key.",
    r.DOCUMENT_COUNT: "Documents of `{t}` in this window = source rows − quarantined rows.",
    WINDOW_BOUNDS: "Every row of `{t}` staged for this partition lies inside its time window (none outside it).",
}


class PartitionRunConfig(dg.Config):
    """Where a partition run reads the source from."""

    read_snapshot: bool = Field(False, description="Export from the migration's snapshot (source/snapshot) instead "
                                                   "of the live SQLite file; `nova-pipeline migrate` sets it.")


def partitions_def(spec: Spec, tables: list[str]) -> dg.TimeWindowPartitionsDefinition:
    """Daily (or monthly) partitions from the earliest first reading of `tables` up to and including today."""
    grain = spec.tables[tables[0]].partition.grain
    first = min(first_day(spec, t) for t in tables)
    if grain == "month":
        return dg.MonthlyPartitionsDefinition(start_date=first.replace(day=1).isoformat(), end_offset=1)
    return dg.DailyPartitionsDefinition(start_date=first.isoformat(), end_offset=1)


def build_partitioned_assets(spec: Spec, table: str, pdef: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """Export, transform and load one partitioned table, one time window per partition key."""
    t = spec.tables[table]
    raw, clean, tkey = K.raw_key(table), K.clean_key(table), K.target_key(spec, table)
    version, about = A.code_version(t), f" {t.description}" if t.description else ""
    common = dict(code_version=version, owners=t.owners, tags=dict(t.tags), partitions_def=pdef)
    part = t.partition
    specs = [
        dg.AssetSpec(raw, deps=[K.SNAPSHOT], group_name="staging", kinds={"sqlite", "parquet"}, **common,
                     description=f"Rows of `{table}` whose `{part.column}` falls in the partition's UTC window, "
                                 f"exported to zstd Parquet as stored.{about}"),
        dg.AssetSpec(clean, deps=[raw], group_name="staging", kinds={"parquet"}, **common,
                     description=f"The window's rows of `{table}` cast to their target types; rows that cannot be "
                                 "cast are quarantined with column, raw value and reason."),
        dg.AssetSpec(tkey, deps=A.target_deps(spec, table, t), kinds={"postgres" if t.target == "postgres" else "mongodb"},
                     group_name=t.target if t.target == "postgres" else "mongodb", **common,
                     description=f"`{table}` by {part.grain} of `{part.column}`: each partition deletes and "
                                 f"re-inserts its window in one transaction, so re-runs and backfills never "
                                 f"duplicate.{about}"),
    ]

    return dg.multi_asset(name=f"partitions_{K.key_part(table)}", specs=specs, can_subset=True,
                          backfill_policy=dg.BackfillPolicy.single_run(), op_tags=K.table_tags(table),
                          description=f"Partitioned export, transform and load of `{table}`.")(load_partitions_step)


def load_partitions_step(context: dg.AssetExecutionContext, config: PartitionRunConfig, nova: Nova,
                         postgres: PostgresResource, mongo: MongoResource):
    """The step of one partitioned table: the selected phases over the run's partition keys, each materialized."""
    table = K.table_of(context)
    phases = K.phase_keys(nova.spec, table)
    source = nova.local_snapshot() if config.read_snapshot else source_path(nova.spec)
    done = load_partition_range(nova, table, context.partition_keys, source=source, postgres=postgres, mongo=mongo,
                                run=K.run_ids(context),
                                phases=[p for p, k in phases.items() if k in context.selected_asset_keys])
    for phase, key in phases.items():
        if key in context.selected_asset_keys:
            n, seconds = sum(done.rows[phase].values()), done.seconds[phase]
            yield dg.MaterializeResult(asset_key=key, metadata={
                "dagster/row_count": n, "rows_per_partition": dg.MetadataValue.json(done.rows[phase]),
                "seconds": round(seconds, 3), "rows_per_s": rate(n, seconds),
                "source": "snapshot" if config.read_snapshot else "live"})


def build_partitioned_checks(spec: Spec, table: str, pdef: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    """Per-partition checks of one table's window: counts, aggregates and hashes source vs target, window bounds."""
    t = spec.tables[table]
    tkey = K.target_key(spec, table)
    names = POSTGRES_CHECKS if t.target == "postgres" else MONGO_CHECKS
    with warnings.catch_warnings():  # partitioned checks are a preview feature of Dagster 1.13; we rely on them
        warnings.simplefilter("ignore", dg.PreviewWarning)
        specs = [dg.AssetCheckSpec(n, asset=tkey, partitions_def=pdef, blocking=n in r.BLOCKING,
                                   description=DESCRIPTIONS[n].format(t=table)) for n in names]

    return dg.multi_asset_check(specs=specs, name=f"validate_partitions_{K.key_part(table)}",
                                op_tags=K.table_tags(table),
                                description=f"Validation of each loaded window of `{table}` in {t.target}.")(
        validate_partitions_step)


def validate_partitions_step(context: dg.AssetCheckExecutionContext, nova: Nova, postgres: PostgresResource,
                             mongo: MongoResource):
    """The step of one partitioned table's checks over the run's partition keys."""
    table, keys = K.table_of(context), context.partition_keys
    tkey, names = context.check_specs[0].asset_key, [c.name for c in context.check_specs]
    per_key = range_checks(nova.spec, table, nova.staging, keys, postgres, mongo, nova.facts)
    if len(keys) == 1:
        for res in per_key[keys[0]]:
            yield check_result(tkey, res)
        return
    # A range run has one check step: each partition's evaluation is logged under its key, and the
    # step's own result per check summarises the range (it fails when any partition failed).
    for key, results in per_key.items():
        for res in results:
            context.op_execution_context.log_event(check_result(tkey, res, key))
    for name in names:
        failed = [k for k, results in per_key.items() for res in results if res.check == name and not res.passed]
        detail = (f"{len(keys)} partition(s) {keys[0]}..{keys[-1]} passed" if not failed
                  else f"{name}: failed in {len(failed)} partition(s): {', '.join(failed[:10])}")
        yield check_result(tkey, CheckResult(table, name, not failed, detail, failed))


def build_partition_schedule(job: dg.JobDefinition, grain: str) -> dg.ScheduleDefinition:
    """Every day at 00:15 UTC: yesterday's partition (for monthly grain, the month holding yesterday).

    Not build_schedule_from_partitioned_job: with end_offset=1 (today's partition exists) it targets today.
    """

    @dg.schedule(name=f"{job.name}_daily", job=job, cron_schedule="15 0 * * *", execution_timezone="UTC",
                 default_status=dg.DefaultScheduleStatus.STOPPED,
                 description="Materializes yesterday's partition of every partitioned table once the day is over.")
    def daily(context: dg.ScheduleEvaluationContext):
        day = context.scheduled_execution_time.astimezone(timezone.utc).date() - timedelta(days=1)
        key = (day if grain == "day" else day.replace(day=1)).isoformat()
        return dg.RunRequest(run_key=f"scheduled:{key}:{day}", partition_key=key)

    return daily


def jobs_by_name(spec: Spec) -> dict[str, list[str]]:
    """Partition job name → its tables: `telemetry_partitions` for the first grain used, `telemetry_partitions_<grain>` after."""
    by_grain: dict[str, list[str]] = {}
    for name in partitioned_tables(spec):
        by_grain.setdefault(spec.tables[name].partition.grain, []).append(name)
    return {(JOB if i == 0 else f"{JOB}_{grain}"): tables for i, (grain, tables) in enumerate(by_grain.items())}


def job_of(spec: Spec, table: str) -> str:
    """The partition job that materializes `table` (PartitionError when the table is not partitioned)."""
    found = [job for job, tables in jobs_by_name(spec).items() if table in tables]
    if not found:
        raise partitions.PartitionError(f"table {table!r} is not a partitioned table of the spec "
                                        f"(partitioned: {', '.join(partitioned_tables(spec)) or 'none'})")
    return found[0]


def build_partitioned_defs(spec: Spec) -> dict[str, list]:
    """Assets, checks, jobs, schedules and sensors of the spec's partitioned tables (empty lists when none)."""
    out: dict[str, list] = {"assets": [], "checks": [], "jobs": [], "schedules": [], "sensors": []}
    for name, tables in jobs_by_name(spec).items():
        grain = spec.tables[tables[0]].partition.grain
        pdef = partitions_def(spec, tables)
        assets = [build_partitioned_assets(spec, t, pdef) for t in tables]
        job = dg.define_asset_job(name, selection=dg.AssetSelection.assets(*assets),
                                  partitions_def=pdef,
                                  description=f"Load {grain} partitions of {', '.join(tables)}: export the window, "
                                              "transform, replace it in the target, check it.")
        out["assets"] += assets
        out["checks"] += [build_partitioned_checks(spec, t, pdef) for t in tables]
        out["jobs"].append(job)
        out["schedules"].append(build_partition_schedule(job, grain))
        out["sensors"] += [build_partition_sensor(spec, t, job, pdef) for t in tables]
    return out
