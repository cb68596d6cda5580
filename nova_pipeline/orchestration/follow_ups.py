"""What follows a successful migration run: one description for the UI's sensors (defs/sensors.py) and the
CLI's migrate (migration.py).

A `migrate` run cannot hold the time-partitioned tables (a run cannot mix partitioned and unpartitioned
assets), so their partitions are loaded after it, and then the smoke tests and the report run again to cover
every table. A CLI migrate runs the steps marked `by_cli` itself (its runs carry CLI_TAG, which the sensors
then skip); the sensors run them after a migration launched in the UI, and the others after both.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from nova_pipeline.core.spec import Spec
from nova_pipeline.orchestration.defs.keys import APP_OBJECTS, REPORT, SMOKE_TESTS

CLI_TAG = "nova/cli"  # on the runs a CLI command launched
AFTER_TAG = "nova/after_migration"  # on a follow-up run: the id of the migration run it follows


@dataclass(frozen=True)
class FollowUp:
    """One step after a successful migration run: its sensor's name and what it does."""

    sensor: str
    description: str
    by_cli: bool  # a CLI migrate runs it itself


PARTITION_LOADS = FollowUp("partitions_after_migration", "load every partition of the time-partitioned tables "
                           "(one range run per partition job)", by_cli=True)
REFRESH = FollowUp("report_after_partitions", "once the partition loads succeed, re-run the smoke tests and the "
                   "migration report so they cover every table", by_cli=True)
BACKUP = FollowUp("backup_after_migration", "back up the targets (skipped while NOVA_BACKUP_KEY is not set or not "
                  "a valid key)", by_cli=False)
REFRESHED = (SMOKE_TESTS, REPORT)  # the assets REFRESH re-runs


def refreshed(spec: Spec, *, with_app_objects: bool) -> list[dg.AssetKey]:
    """REFRESH's assets; `with_app_objects` when the migration run left the views, triggers and full-text search
    for after the partitions too (the CLI does: their checks then see every row)."""
    return [*([APP_OBJECTS] if with_app_objects and spec.table_items("postgres") else []), *REFRESHED]


def skipped_for(follow_up: FollowUp, run: dg.DagsterRun) -> bool:
    """True when the CLI that launched `run` runs `follow_up` itself."""
    return follow_up.by_cli and bool(run.tags.get(CLI_TAG))
