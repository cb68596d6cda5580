"""One migration from the command line: resolve targets, lock, back up, run the job, reconcile, report.

Dagster and the asset definitions (slow imports) are imported once
the target is locked and the source snapshot has started: the SQLite copy and
its checks run in C beside those imports.
"""

from __future__ import annotations

import dataclasses
from contextlib import ExitStack, closing
from pathlib import Path
from typing import TYPE_CHECKING

from nova_pipeline.appschema import app_objects
from nova_pipeline.core import connections, retention, run_lock
from nova_pipeline.core.background import begun
from nova_pipeline.core.run_context import RunContext
from nova_pipeline.orchestration.executors import MOCK_NOTE, executor_name
from nova_pipeline.load import postgres_ddl
from nova_pipeline.pipeline import preflight
from nova_pipeline.report import phases as report_phases
from nova_pipeline.report import report
from nova_pipeline.extract import snapshot
from nova_pipeline.core.spec import Spec, load_spec

if TYPE_CHECKING:
    from dagster import DagsterInstance

    from nova_pipeline.orchestration.runs import RunOutcome

JOB_FOR_TARGET = {"both": "migrate", "postgres": "migrate_postgres", "mongo": "migrate_mongo"}
QUICK_NOTE = ("the snapshot was checked with quick_check only (--integrity quick): pages, freelist and constraints, "
              "not every index against its table")


def not_migrated_objects(ctx: RunContext, reported: list[str] | None = None) -> list[str]:
    """Views, triggers, FTS and virtual tables of the snapshot that were not carried over: what the app-objects
    step `reported` (each with the reason and its SQL), or, when that step did not run, every one of them."""
    if reported is not None:
        return reported
    path = ctx.taken_snapshot()
    if path is None:
        return []
    with closing(snapshot.connect_readonly(path)) as conn:
        found = app_objects.read_objects(conn)
    return [f"{name} not created: the step creating views, triggers and full-text search did not run"
            for name in found.named()]


def job_name(spec: Spec, target: str) -> str:
    """The job for --target; a single-target spec has only `migrate`."""
    if target == "both" or len({t.target for _, t in spec.table_items()}) <= 1:
        return "migrate"
    return JOB_FOR_TARGET[target]


def exit_code(rep: report.MigrationReport) -> int:
    """0 when every table reconciled and no blocking check failed, else 1."""
    return 0 if rep.status == "succeeded" else 1


def reconcile(ctx: RunContext, instance: DagsterInstance, outcome: RunOutcome, pg_url: str | None,
              mongo_uri: str | None, started_at: str, notes: list[str], target: str = "both") -> report.MigrationReport:
    """The report of a run (of the `target` tables): the migration_report asset's counts when it ran after the
    last load, else counted here from the snapshot, the quarantine and the targets; with this run's timings,
    errors, checks and notes."""
    from nova_pipeline.orchestration.defs.completion import (latest_seconds, latest_smoke_checks, snapshot_taken_in_run,
                                                             stored_report)
    from nova_pipeline.orchestration.defs.keys import APP_OBJECTS, REPORT, SMOKE_TESTS, target_key
    from nova_pipeline.pipeline.report import count_report
    from nova_pipeline.orchestration.defs.app_objects import latest_not_carried
    from nova_pipeline.orchestration.phase_times import run_phases
    from nova_pipeline.orchestration.runs import migration_runs

    spec = ctx.spec
    run_id = outcome.migration_id or outcome.run_id
    runs = [r.run_id for r in migration_runs(instance, run_id)]
    smoke = latest_smoke_checks(instance, runs) if SMOKE_TESTS in outcome.materialized else []
    errors = {k: v for k, v in outcome.errors.items() if k in spec.tables}
    seconds, checks = latest_seconds(instance, spec, runs), outcome.checks + smoke
    rep = stored_report(instance, runs) if REPORT in outcome.materialized else None
    if rep is not None:
        rep = dataclasses.replace(rep, status="succeeded", run_id=run_id, started_at=started_at,
                                  finished_at=report.now_iso(), checks=checks, notes=notes)
        for name, t in rep.tables.items():
            report.settle_table(t, seconds.get(name), errors.get(name))
    else:
        mongo_db = connections.mongo_client(mongo_uri)[spec.targets.mongo.database] if mongo_uri else None
        rep = count_report(ctx, postgres_url=pg_url, mongo_db=mongo_db, run_id=run_id,
                           started_at=started_at, seconds=seconds, errors=errors, checks=checks, notes=notes)
    counted = set(rep.tables) if ctx.taken_snapshot() else set()  # the source rows were counted
    rep.snapshot = snapshot.verified_facts(ctx, snapshot_taken_in_run(instance, outcome.run_id))
    if "problem" in rep.snapshot:  # the checks compared against another source's or another run's snapshot
        rep.notes.append(rep.snapshot["problem"])
    if target != "both":
        rep.tables = {n: t for n, t in rep.tables.items() if t.target == target}
    rep.phases = report_phases.phase_table(run_phases(instance, runs), rep.tables)
    rep.notes += not_migrated_objects(ctx, latest_not_carried(instance) if APP_OBJECTS in outcome.materialized else None)
    rep.notes += [f"not translated: {line}" for line in postgres_ddl.untranslated_checks(spec)]
    other_errors = {k: v for k, v in outcome.errors.items() if k not in spec.tables}
    cause = next((f"step {k} failed: {v}" for k, v in other_errors.items()), "its steps did not run")
    for name, t in rep.tables.items():
        key = target_key(spec, name)
        never_ran = key in outcome.planned and key not in outcome.materialized
        if t.status != "failed" and (never_ran or name not in counted):
            t.status, t.error = "failed", f"not migrated: {cause}"
    rep.notes += [f"step {k} failed: {v}" for k, v in other_errors.items()]
    blocking_failed = any(not c["passed"] and c.get("severity") != "WARN" for c in rep.checks)
    if (not outcome.success or blocking_failed or "problem" in rep.snapshot
            or any(t.status == "failed" for t in rep.tables.values())):
        rep.status = "failed"
    return rep


def migrate(spec_path: str, **options) -> report.MigrationReport:
    """Load the spec (SpecError) and check its source (SourceError: exit 2 before anything runs), then hold its
    staging area (AreaUnavailable when another migration holds it) until `run_migration_locked(ctx, spec_path,
    **options)` has written the report."""
    ctx = RunContext.for_spec(load_spec(spec_path))
    preflight.check_inputs(ctx, resume=options.get("resume", False))  # exit 2 before anything runs
    with snapshot.exclusive_area(ctx.spec):
        return run_migration_locked(ctx, spec_path, **options)


def run_migration_locked(ctx: RunContext, spec_path: str, *, target: str = "both", postgres_url: str | None = None,
            mongo_uri: str | None = None, report_path: Path | None = None, backup: bool = True,
            mock_mongo_fallback: bool = False, resume_run: str | None = None,
            resume: bool = False, force: bool = False, executor: str | None = None) -> report.MigrationReport:
    """Run (or resume) the migration under the target's migration lock and write the report; `executor` is
    orchestration.executors' choice (None: NOVA_EXECUTOR or the default).

    Raises TargetChanged, before anything runs, when target tables hold content nova-pipeline did not leave
    there, unless `force`.
    """
    spec = ctx.spec
    started = report.now_iso()
    with ExitStack() as stack:
        cleared = preflight.clear_targets(ctx, stack, postgres_url, mongo_uri, target=target, force=force,
                                          mock_mongo_fallback=mock_mongo_fallback)
        pg, mongo, lock = cleared.postgres_url, cleared.mongo_uri, cleared.lock
        notes = [f"MongoDB documents went to {connections.describe_mongo(mongo)}."] if mongo else []
        if not resume and snapshot.integrity_level() == "quick":
            notes.append(QUICK_NOTE)
        notes += cleared.notes
        tags = {run_lock.RUN_TOKEN_TAG: lock.token} if lock else {}
        requested, executor = executor, executor_name(spec, executor, mongo)
        if requested and requested != executor:
            notes.append(f"ran {executor}, not {requested}: {MOCK_NOTE} (or this machine has one core)")
        if not resume and executor == "in_process":  # the job's snapshot asset, in this process, takes this copy
            stack.enter_context(snapshot.started_snapshot(ctx.source, ctx.snapshot_path,
                                                          ctx.pending_snapshots))
        if backup:  # beside the snapshot and Dagster's imports; complete before anything is written to a target
            pending_backup = begun(_pre_migration_backup, spec, pg, mongo, name="pre-migration-backup")
            stack.callback(pending_backup.exception)  # an early exit waits for it too
        from nova_pipeline.orchestration.follow_ups import refreshed
        from nova_pipeline.pipeline.partition_range import partitioned_tables
        from nova_pipeline.orchestration.runs import (Runner, migration_checks, record_status, resume_migration,
                                                      run_migration)

        runner = Runner(ctx, spec_path, pg, mongo, executor)

        if backup:
            notes.append(pending_backup.result())
        if resume:
            outcome = resume_migration(spec, spec_path, resume_run, postgres_url=pg, mongo_uri=mongo, tags=tags,
                                       force=force, runner=runner)
            notes.append(f"resumed migration {outcome.migration_id} in run {outcome.run_id}")
        else:
            # With partitioned tables, the app objects, smoke tests and the report run once, after the partitions
            # are loaded (follow_ups.REFRESH).
            partitioned = any(target in ("both", spec.tables[t].target) for t in partitioned_tables(spec))
            later = set(refreshed(spec, with_app_objects=True)) if partitioned else set()
            outcome = run_migration(spec, spec_path, job=job_name(spec, target), postgres_url=pg, mongo_uri=mongo,
                                    exclude=later, tags=tags, runner=runner)
        outcome = _follow_ups(spec, spec_path, outcome, job=job_name(spec, target), target=target, postgres_url=pg,
                              mongo_uri=mongo, tags=tags, runner=runner)
        if lock and (lost := lock.lost()):
            notes.append(f"lost the migration lock: {lost}; no write was committed without it")
    outcome.checks = migration_checks(runner.instance, outcome.migration_id)  # a resumed migration's too
    rep = reconcile(ctx, runner.instance, outcome, pg, mongo, started, notes, target)
    if rep.status == "succeeded":  # a failed run keeps what resume needs
        rep.notes.append(retention.after_success(spec))
    report.write_report(rep, spec.resolve(spec.reports), report_path)
    record_status(runner.instance, outcome.migration_id, rep.status)
    return rep


def _follow_ups(spec: Spec, spec_path: str, outcome: RunOutcome, *, job: str, target: str, postgres_url: str | None,
                mongo_uri: str | None, tags: dict[str, str], runner) -> RunOutcome:
    """What a CLI migrate runs itself after its main run (follow_ups.py): PARTITION_LOADS, from the snapshot,
    then REFRESH with the app objects the main run left for after them; `outcome` merged with what these runs
    did. The runs carry `tags` and belong to `outcome`'s migration."""
    from nova_pipeline.orchestration.defs.keys import MIGRATION_TAG
    from nova_pipeline.orchestration.follow_ups import refreshed
    from nova_pipeline.orchestration.partition_runs import load_all_partitions
    from nova_pipeline.orchestration.runs import run_migration

    tags = {**tags, MIGRATION_TAG: outcome.migration_id}
    parts = load_all_partitions(spec, spec_path, target=target, postgres_url=postgres_url, mongo_uri=mongo_uri,
                                tags=tags, runner=runner)
    if parts:
        parts.append(run_migration(spec, spec_path, job=job, postgres_url=postgres_url, mongo_uri=mongo_uri,
                                   asset_selection=refreshed(spec, with_app_objects=True), tags=tags, runner=runner))
    for part in parts:
        outcome.success &= part.success
        outcome.errors.update(part.errors)
        outcome.checks += part.checks
        outcome.materialized |= part.materialized
        outcome.planned |= part.planned
    return outcome


def _pre_migration_backup(spec: Spec, pg_url: str | None, mongo_uri: str | None) -> str:
    from nova_pipeline.backup.baseline import pre_migration_backup

    backup_set = pre_migration_backup(spec, pg_url, mongo_uri)
    kind = "empty baseline (the targets held none of the spec's rows)" if backup_set.manifest.get("baseline") else "backup"
    return f"pre-migration {kind}: {backup_set.location}"
