"""Source-change sensor: a new commit in the SQLite source requests a sync (migrate) run."""


import os

import dagster as dg

from nova_pipeline.spec import Spec


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
