"""Dagster wiring of backups: the nightly job and its schedule, a backup after each successful
migration, an alert on failed runs, and the rollback job. The engine is nova_pipeline.backup."""

import json
import os
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from nova_pipeline.backup import apply_retention, backup_dest, create_backup, rollback
from nova_pipeline.backup.crypto import parse_key
from nova_pipeline.backup.errors import BackupKeyError
from nova_pipeline.backup.retention import retention_days_setting
from nova_pipeline.core.connections import redact
from nova_pipeline.orchestration.defs.resources import MongoResource, Nova, PostgresResource
from nova_pipeline.core.spec import Spec

DEFAULT_SCHEDULE = "0 2 * * *"
LABEL_TAG = "nova/backup_label"


class RollbackConfig(dg.Config):
    reason: str


@dg.op(name="create_backup_set", description="Write one encrypted, verified backup set of the targets and the SQLite "
       "source, then apply retention. Size and duration are output metadata.")
def nightly_backup_op(context: dg.OpExecutionContext, nova: Nova, postgres: PostgresResource,
                      mongo: MongoResource) -> dg.Output[str]:
    spec = nova.spec
    started = time.monotonic()
    backup = create_backup(spec, postgres_url=postgres.url(spec), mongo_uri=mongo.uri(spec),
                           label=context.run.tags.get(LABEL_TAG))
    removed = apply_retention(backup_dest(spec), retention_days_setting(spec.backup.retention_days), spec.backup.keep_last)
    context.log.info(f"backup set {backup.location} ({backup.stored_size} bytes, {backup.state}); "
                     f"retention deleted {len(removed)} set(s)")
    return dg.Output(backup.location, metadata={
        "set": dg.MetadataValue.path(backup.location),
        "size_bytes": dg.MetadataValue.int(backup.stored_size),
        "plain_bytes": dg.MetadataValue.int(sum(f["plain_size"] for f in backup.manifest["files"])),
        "duration_s": dg.MetadataValue.float(round(time.monotonic() - started, 3)),
        "files": dg.MetadataValue.int(len(backup.manifest["files"])),
        "verification": dg.MetadataValue.text(backup.state),
        "encrypted": dg.MetadataValue.bool(backup.manifest["encryption"] is not None),
        "retention_deleted": dg.MetadataValue.json(removed),
    })


@dg.op(name="rollback_targets", description="Return the targets to the last pre-migration backup set (after a safety "
       "backup) and record the reason in the report history.")
def rollback_op(context: dg.OpExecutionContext, config: RollbackConfig, nova: Nova, postgres: PostgresResource,
                mongo: MongoResource) -> dg.Output[str]:
    spec = nova.spec
    entry = rollback(spec, postgres.url(spec), mongo.uri(spec), config.reason)
    context.log.info(f"rolled back to {entry['restored_set']}; safety backup {entry['safety_set']}")
    return dg.Output(entry["restored_set"], metadata={
        "restored_set": dg.MetadataValue.path(entry["restored_set"]),
        "safety_set": dg.MetadataValue.path(entry["safety_set"]),
        "reason": dg.MetadataValue.text(config.reason),
    })


@dg.job(name="nightly_backup", description="Encrypted, verified backup set of the targets and the source, then retention.")
def nightly_backup_job():
    nightly_backup_op()


@dg.job(name="rollback", description="Restore the last pre-migration backup set into the targets (config: reason).")
def rollback_job():
    rollback_op()


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


def build_backup_defs(migrate_job, spec: Spec | None = None) -> dict[str, list]:
    """Jobs `nightly_backup` and `rollback`, the nightly schedule, and the migration-success and run-failure sensors."""
    cron = os.environ.get("BACKUP_SCHEDULE", "").strip() or (spec.backup.schedule if spec else DEFAULT_SCHEDULE)
    try:
        schedule = dg.ScheduleDefinition(name="nightly_backup_schedule", job=nightly_backup_job, cron_schedule=cron,
                                         execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.STOPPED)
    except dg.DagsterInvalidDefinitionError:
        raise ValueError(f"BACKUP_SCHEDULE / backup.schedule: invalid cron expression {cron!r}") from None

    @dg.run_status_sensor(name="backup_after_migration", run_status=dg.DagsterRunStatus.SUCCESS,
                          monitored_jobs=[migrate_job], request_job=nightly_backup_job,
                          default_status=dg.DefaultSensorStatus.RUNNING,
                          description="Requests a backup after each successful migration run (skipped while "
                                      "NOVA_BACKUP_KEY is not set or not a valid key).")
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

    return {"jobs": [nightly_backup_job, rollback_job], "schedules": [schedule],
            "sensors": [backup_after_migration, alert_on_run_failure]}
