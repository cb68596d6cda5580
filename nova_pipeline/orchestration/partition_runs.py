"""Partitioned loads from the command line, through the same Dagster job the UI, schedule and sensor use.

`load_partition` runs one partition of one table; `load_all_partitions` runs
one range run (a single-run backfill) over every partition from the first to
the last reading, which `nova-pipeline migrate` does after its main job
(follow_ups.PARTITION_LOADS).
Both execute `telemetry_partitions` in process against the persistent
instance, so the runs and per-partition checks show in the UI.
"""

from __future__ import annotations

import uuid

import dagster as dg

from nova_pipeline.core import connections
from nova_pipeline.load import partitions
from nova_pipeline.orchestration.defs import keys as K
from nova_pipeline.orchestration.defs import partitions as P
from nova_pipeline.orchestration.follow_ups import CLI_TAG
from nova_pipeline.pipeline.partition_range import source_path
from nova_pipeline.orchestration.progress import planned_items, run_progress
from nova_pipeline.orchestration.runs import QUIET, Runner, RunOutcome, outcome_of
from nova_pipeline.core.spec import Spec


def _selection(spec: Spec, tables: list[str]) -> list[dg.AssetKey]:
    return [k for t in tables for k in (K.raw_key(t), K.clean_key(t), K.target_key(spec, t))]


def _run_config(tables: list[str], read_snapshot: bool) -> dict:
    return {"ops": {f"partitions_{K.key_part(t)}": {"config": {"read_snapshot": read_snapshot}} for t in tables}}


def _execute(spec: Spec, spec_path: str, job_name: str, tables: list[str], *, postgres_url: str | None,
             mongo_uri: str | None, read_snapshot: bool, partition_key: str | None = None,
             tags: dict[str, str] | None = None, runner: Runner | None = None) -> RunOutcome:
    runner = runner or Runner.for_spec(spec, spec_path, postgres_url, mongo_uri)
    job = runner.definitions().resolve_job_def(job_name)
    instance, run_id, selection = runner.instance, str(uuid.uuid4()), _selection(spec, tables)
    with run_progress(instance, run_id, planned_items(job, selection)):
        result = job.execute_in_process(
            instance=instance, raise_on_error=False, partition_key=partition_key, asset_selection=selection,
            run_id=run_id, run_config={**_run_config(tables, read_snapshot), **QUIET},
            tags={"nova/spec": spec_path, CLI_TAG: "1", **(tags or {})})
    out = outcome_of(spec, result)
    steps = {f"partitions_{K.key_part(t)}": t for t in tables}  # name failures by table, like the migrate job
    out.errors = {steps.get(k, k): v for k, v in out.errors.items()}
    return out


def load_partition(spec: Spec, spec_path: str, table: str, key: str, postgres_url: str | None = None,
                   mongo_uri: str | None = None) -> RunOutcome:
    """Materialize partition `key` of `table` (export, transform, load, checks) from the live source.

    Raises PartitionError for a table that is not partitioned or a key outside its partitions, and
    TargetUnreachable when the table's target is not reachable.
    """
    job_name = P.job_of(spec, table)
    if spec.tables[table].target == "postgres":
        postgres_url = connections.postgres_url(spec, postgres_url)
        connections.connect_postgres(postgres_url).close()
    else:
        mongo_uri = connections.mongo_uri(spec, mongo_uri)
        if not mongo_uri:
            raise connections.TargetUnreachable(f"table {table!r} goes to MongoDB: pass --mongo-uri or set NOVA_MONGO_URI")
        connections.ping_mongo(connections.mongo_client(mongo_uri), mongo_uri)
    runner = Runner.for_spec(spec, spec_path, postgres_url, mongo_uri)
    pdef = runner.definitions().resolve_job_def(job_name).partitions_def
    if not pdef.has_partition_key(key):
        first, last = pdef.get_first_partition_key(), pdef.get_last_partition_key()
        raise partitions.PartitionError(f"table {table!r}: no partition {key!r} (partitions run from {first} to {last})")
    return _execute(spec, spec_path, job_name, [table], postgres_url=postgres_url, mongo_uri=mongo_uri,
                    read_snapshot=False, partition_key=key, runner=runner)


def load_all_partitions(spec: Spec, spec_path: str, *, target: str = "both", postgres_url: str | None = None,
                        mongo_uri: str | None = None, read_snapshot: bool = True,
                        tags: dict[str, str] | None = None, runner: Runner | None = None) -> list[RunOutcome]:
    """One range run per partition job over [first reading, last reading] of its tables (of `target`, or all),
    tagged with `tags` (a migration's id and run token); with the command's `runner`, its run context and
    Definitions.

    Also quarantines the rows whose timestamp no window holds, so every source row is loaded or quarantined.
    """
    runner = runner or Runner.for_spec(spec, spec_path, postgres_url, mongo_uri)
    ctx = runner.ctx  # the days the profile step stored for the snapshot: no second scan
    source = ctx.local_snapshot() if read_snapshot else source_path(spec)
    defs, outcomes = runner.definitions(), []
    for job_name, tables in P.jobs_by_name(spec).items():
        tables = [t for t in tables if target == "both" or spec.tables[t].target == target]
        if not tables:
            continue
        ranges = [partitions.partition_range(spec, t, source, ctx.facts) for t in tables]
        first, last = min(r[0] for r in ranges), max(r[1] for r in ranges)
        keys = defs.resolve_job_def(job_name).partitions_def.get_partition_keys()
        # Readings before the first partition (a later `partition.start`) or after today have no partition.
        start = max(partitions.partition_key(spec, tables[0], first), keys[0])
        end = min(max(partitions.partition_key(spec, tables[0], last), start), keys[-1])
        outcomes.append(_execute(spec, spec_path, job_name, tables, postgres_url=postgres_url, mongo_uri=mongo_uri,
                                 read_snapshot=read_snapshot, runner=runner, tags={**(tags or {}),
                                                                    "dagster/asset_partition_range_start": start,
                                                                    "dagster/asset_partition_range_end": end}))
    return outcomes
