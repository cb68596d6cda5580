"""Source-change sensor: a new commit in the SQLite source requests a sync (migrate) run."""


import os

import dagster as dg

from nova_pipeline.core.spec import Spec


def source_fingerprint(path: str) -> str:
    """mtime_ns and size of the database and its -wal file (in WAL mode a commit touches only -wal)."""
    parts = []
    for p in (path, path + "-wal"):
        try:
            st = os.stat(p)
            parts.append(f"{st.st_mtime_ns}:{st.st_size}")
        except FileNotFoundError:
            parts.append("-")
    return "|".join(parts)


def build_source_change_sensor(spec: Spec, migrate_job) -> dg.SensorDefinition:
    """Sensor `sqlite_source_changed`: requests one migrate run per observed change of the source file."""
    source = str(spec.resolve(spec.source.sqlite))

    @dg.sensor(name="sqlite_source_changed", job=migrate_job, minimum_interval_seconds=60,
               default_status=dg.DefaultSensorStatus.STOPPED,
               description=f"Requests a `{migrate_job.name}` run when the SQLite source ({source}) changes "
                           "(mtime and size of the file and its -wal).")
    def sqlite_source_changed(context: dg.SensorEvaluationContext):
        fp, previous = source_fingerprint(source), context.cursor
        if fp == previous:
            return dg.SkipReason("source unchanged")
        context.update_cursor(fp)
        if previous is None:
            return dg.SkipReason("first look: fingerprint recorded")
        if fp.startswith("-"):
            return dg.SkipReason(f"source missing: {source}")
        return dg.RunRequest(run_key=fp, tags={"nova/trigger": "sqlite_change"})

    return sqlite_source_changed


def _range_tags(job: dg.JobDefinition) -> dict[str, str]:
    pdef = job.partitions_def
    return {"dagster/asset_partition_range_start": pdef.get_first_partition_key(),
            "dagster/asset_partition_range_end": pdef.get_last_partition_key()}


def build_migration_chain_sensors(migrate_job, partition_jobs: list, report_keys: list[dg.AssetKey]) -> list:
    """A `migrate` run from the UI does not hold the time-partitioned tables (a run cannot mix partitioned and
    unpartitioned assets): after it succeeds, load every partition in one range run per partition job, then
    refresh the smoke tests and the report. CLI runs (tag nova/cli) do the same steps themselves."""
    if not partition_jobs:
        return []

    @dg.run_status_sensor(name="partitions_after_migration", run_status=dg.DagsterRunStatus.SUCCESS,
                          monitored_jobs=[migrate_job], request_jobs=partition_jobs,
                          default_status=dg.DefaultSensorStatus.RUNNING,
                          description="After a successful `migrate` run launched in the UI, loads every partition "
                                      "of the time-partitioned tables (one range run per partition job).")
    def partitions_after_migration(context: dg.RunStatusSensorContext):
        run = context.dagster_run
        if run.tags.get("nova/cli") or run.asset_selection and not set(run.asset_selection) - set(report_keys):
            return dg.SkipReason("CLI runs and report refreshes load partitions themselves")
        return [dg.RunRequest(run_key=f"{run.run_id}:{job.name}", job_name=job.name,
                              tags={**_range_tags(job), "nova/after_migration": run.run_id})
                for job in partition_jobs]

    @dg.run_status_sensor(name="report_after_partitions", run_status=dg.DagsterRunStatus.SUCCESS,
                          monitored_jobs=partition_jobs, request_job=migrate_job,
                          default_status=dg.DefaultSensorStatus.RUNNING,
                          description="Once the partition loads that followed a migration succeed, re-runs the smoke "
                                      "tests and the migration report so they cover every table.")
    def report_after_partitions(context: dg.RunStatusSensorContext):
        origin = context.dagster_run.tags.get("nova/after_migration")
        if not origin:
            return dg.SkipReason("not a load that followed a migration")
        return dg.RunRequest(run_key=f"{origin}:report", asset_selection=report_keys,
                             tags={"nova/after_migration": origin})

    return [partitions_after_migration, report_after_partitions]
