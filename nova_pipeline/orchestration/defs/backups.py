"""Dagster wiring of backups: the nightly job and its schedule, and the rollback job (with the sensors of
defs/sensors.py: a backup after each successful migration, an alert on failed runs). The engine is
nova_pipeline.backup."""

import os
import time

import dagster as dg

from nova_pipeline.backup import apply_retention, backup_dest, create_backup, rollback
from nova_pipeline.backup.retention import retention_days_setting
from nova_pipeline.orchestration.defs.resources import MongoResource, Nova, PostgresResource
from nova_pipeline.orchestration.defs.sensors import LABEL_TAG, build_backup_sensors
from nova_pipeline.core.spec import Spec

DEFAULT_SCHEDULE = "0 2 * * *"


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
        "safety_set": dg.MetadataValue.text(entry["safety_set"] or "none (empty baseline, no NOVA_BACKUP_KEY)"),
        "reason": dg.MetadataValue.text(config.reason),
    })


@dg.job(name="nightly_backup", description="Encrypted, verified backup set of the targets and the source, then retention.")
def nightly_backup_job():
    nightly_backup_op()


@dg.job(name="rollback", description="Restore the last pre-migration backup set into the targets (config: reason).")
def rollback_job():
    rollback_op()


def build_backup_defs(migrate_job, spec: Spec | None = None) -> dict[str, list]:
    """Jobs `nightly_backup` and `rollback`, the nightly schedule, and the migration-success and run-failure sensors."""
    cron = os.environ.get("BACKUP_SCHEDULE", "").strip() or (spec.backup.schedule if spec else DEFAULT_SCHEDULE)
    try:
        schedule = dg.ScheduleDefinition(name="nightly_backup_schedule", job=nightly_backup_job, cron_schedule=cron,
                                         execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.STOPPED)
    except dg.DagsterInvalidDefinitionError:
        raise ValueError(f"BACKUP_SCHEDULE / backup.schedule: invalid cron expression {cron!r}") from None

    return {"jobs": [nightly_backup_job, rollback_job], "schedules": [schedule],
            "sensors": build_backup_sensors(migrate_job, nightly_backup_job)}
