"""Every sensor of the code location: source changes, new readings of partitioned tables, the steps that follow
a migration (orchestration/follow_ups.py), and the alert on failed runs."""


import json
import os
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from nova_pipeline.backup.crypto import parse_key
from nova_pipeline.backup.errors import BackupKeyError
from nova_pipeline.core.connections import redact
from nova_pipeline.core.spec import Spec
from nova_pipeline.load import partitions
from nova_pipeline.orchestration import follow_ups as F
from nova_pipeline.orchestration.defs import keys as K

LABEL_TAG = "nova/backup_label"


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


def build_partition_sensor(spec: Spec, table: str, job: dg.JobDefinition,
                           pdef: dg.TimeWindowPartitionsDefinition) -> dg.SensorDefinition:
    """Sensor noticing new days and late rows in past days of `table` in the live source (per-day counts + max rowid)."""
    source = spec.resolve(spec.source.sqlite)
    keys = [K.raw_key(table), K.clean_key(table), K.target_key(spec, table)]

    @dg.sensor(name=f"{K.key_part(table)}_new_readings", job=job, minimum_interval_seconds=300,
               default_status=dg.DefaultSensorStatus.STOPPED,
               description=f"Requests a `{job.name}` run for each partition of `{table}` whose rows changed in "
                           f"{source} (new day, late-arriving or deleted rows), one run per partition and change.")
    def new_readings(context: dg.SensorEvaluationContext):
        if not source.exists():
            return dg.SkipReason(f"source missing: {source}")
        seen = {str(d): list(v) for d, v in partitions.day_fingerprints(source, spec, table).items() if d is not None}
        before = json.loads(context.cursor) if context.cursor else None
        context.update_cursor(json.dumps(seen, sort_keys=True))
        if before is None:
            return dg.SkipReason("first look: per-day fingerprints recorded")
        changed = sorted(int(d) for d in set(seen) | set(before) if seen.get(d) != before.get(d))
        by_key: dict[str, list] = {}
        for d in changed:
            by_key.setdefault(partitions.partition_key(spec, table, partitions.day_of(d)), []).append(
                [d, seen.get(str(d))])
        valid = set(pdef.get_partition_keys())
        requests = [dg.RunRequest(run_key=f"{K.key_part(table)}:{k}:{json.dumps(v)}", partition_key=k, asset_selection=keys,
                                  tags={"nova/trigger": "new_readings"})
                    for k, v in by_key.items() if k in valid]
        return requests or dg.SkipReason("no partition changed" if not by_key else
                                         f"changes only outside the partitions: {sorted(by_key)[:5]}")

    return new_readings


def _range_tags(job: dg.JobDefinition) -> dict[str, str]:
    pdef = job.partitions_def
    return {"dagster/asset_partition_range_start": pdef.get_first_partition_key(),
            "dagster/asset_partition_range_end": pdef.get_last_partition_key()}


def build_migration_chain_sensors(spec: Spec, migrate_job, partition_jobs: list) -> list:
    """F.PARTITION_LOADS then F.REFRESH after a successful `migrate` run (none without partitioned tables)."""
    if not partition_jobs:
        return []
    refresh = F.refreshed(spec, with_app_objects=False)

    @dg.run_status_sensor(name=F.PARTITION_LOADS.sensor, run_status=dg.DagsterRunStatus.SUCCESS,
                          monitored_jobs=[migrate_job], request_jobs=partition_jobs,
                          default_status=dg.DefaultSensorStatus.RUNNING,
                          description=f"After a successful `migrate` run launched in the UI: "
                                      f"{F.PARTITION_LOADS.description}.")
    def partitions_after_migration(context: dg.RunStatusSensorContext):
        run = context.dagster_run
        if F.skipped_for(F.PARTITION_LOADS, run) or run.asset_selection and not set(run.asset_selection) - set(refresh):
            return dg.SkipReason("CLI runs and report refreshes load partitions themselves")
        return [dg.RunRequest(run_key=f"{run.run_id}:{job.name}", job_name=job.name,
                              tags={**_range_tags(job), F.AFTER_TAG: run.run_id})
                for job in partition_jobs]

    @dg.run_status_sensor(name=F.REFRESH.sensor, run_status=dg.DagsterRunStatus.SUCCESS,
                          monitored_jobs=partition_jobs, request_job=migrate_job,
                          default_status=dg.DefaultSensorStatus.RUNNING,
                          description=f"After the partition loads that followed a migration: {F.REFRESH.description}.")
    def report_after_partitions(context: dg.RunStatusSensorContext):
        origin = context.dagster_run.tags.get(F.AFTER_TAG)
        if not origin:
            return dg.SkipReason("not a load that followed a migration")
        return dg.RunRequest(run_key=f"{origin}:report", asset_selection=refresh, tags={F.AFTER_TAG: origin})

    return [partitions_after_migration, report_after_partitions]


def send_alert(payload: dict[str, Any], log) -> bool:
    """Log the failure and POST it as JSON to NOVA_ALERT_WEBHOOK when set; True when the webhook accepted it."""
    log.error(f"run failed: job {payload['job']} run {payload['run_id']}: {payload['message']}")
    url = os.environ.get("NOVA_ALERT_WEBHOOK", "").strip()
    if not url:
        return False
    if not url.startswith(("http://", "https://")):
        log.error("NOVA_ALERT_WEBHOOK must be an http(s) URL; alert not sent")
        return False
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError) as e:
        # The webhook URL may carry a token: log only the reason.
        log.warning(f"alert webhook failed: {redact(str(getattr(e, 'reason', e)))}")
        return False


def build_backup_sensors(migrate_job, backup_job) -> list:
    """F.BACKUP after each successful migration run, and the alert on failed runs."""

    @dg.run_status_sensor(name=F.BACKUP.sensor, run_status=dg.DagsterRunStatus.SUCCESS,
                          monitored_jobs=[migrate_job], request_job=backup_job,
                          default_status=dg.DefaultSensorStatus.RUNNING,
                          description=f"After each successful migration run: {F.BACKUP.description}.")
    def backup_after_migration(context: dg.RunStatusSensorContext):
        key = os.environ.get("NOVA_BACKUP_KEY", "")
        if not key.strip():
            return dg.SkipReason("post-migration backup skipped: NOVA_BACKUP_KEY is not set (set it to 64 hex "
                                 "characters, e.g. `openssl rand -hex 32`, to back up after each migration)")
        try:
            parse_key(key)
        except BackupKeyError as e:
            return dg.SkipReason(f"post-migration backup skipped: {e}")
        return dg.RunRequest(run_key=context.dagster_run.run_id,
                             tags={LABEL_TAG: "post-migration", "nova/migration_run": context.dagster_run.run_id})

    @dg.run_failure_sensor(name="alert_on_run_failure", default_status=dg.DefaultSensorStatus.RUNNING,
                           description="Logs failed runs and POSTs them to NOVA_ALERT_WEBHOOK when set.")
    def alert_on_run_failure(context: dg.RunFailureSensorContext):
        send_alert({"event": "run_failure", "job": context.dagster_run.job_name, "run_id": context.dagster_run.run_id,
                    "message": redact(context.failure_event.message or ""), "time": datetime.now(UTC).isoformat()},
                   context.log)

    return [backup_after_migration, alert_on_run_failure]
