"""Running the migration through the Dagster instance, so CLI runs show in the UI.

The CLI resolves targets and options, makes one `Runner` per command (its
RunContext, targets, executor and built Definitions), then calls
`run_migration` or `resume_migration`; both execute the spec's job with the
runner's executor (in process, or multiprocess: each step in its own process,
rebuilding the job and its RunContext from the spec file) against the
instance in DAGSTER_HOME and return a `RunOutcome` the report is built from. Every run of one migration (the main
run, its partition runs, the runs that resume it) carries the tag
`nova/migration` = the id of its first run: the id the report shows and the
quarantine rows are stamped with.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass, field

import dagster as dg
from dagster._core.execution.api import execute_run  # execute_job without a run id chosen beforehand

from nova_pipeline.core import target_state
from nova_pipeline.core.connections import connect_postgres, redact
from nova_pipeline.orchestration.defs import keys as K
from nova_pipeline.orchestration.dagster_storage import dagster_instance
from nova_pipeline.orchestration.defs.build import build_definitions
from nova_pipeline.orchestration.executors import executor_name
from nova_pipeline.orchestration.progress import run_progress
from nova_pipeline.core.run_context import RunContext
from nova_pipeline.core.spec import Spec, load_spec

# The console shows the progress bar and the report; the full event log (tracebacks included) is in the UI.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
MIGRATION_JOBS = ("migrate", "migrate_postgres", "migrate_mongo")
STATUS_TAG = "nova/status"  # on a migration's first run: its report's status


@dataclass
class RunOutcome:
    """What a migration run did, per table and per check."""

    run_id: str
    success: bool
    migration_id: str = ""
    errors: dict[str, str] = field(default_factory=dict)
    checks: list[dict] = field(default_factory=list)
    materialized: set[dg.AssetKey] = field(default_factory=set)
    planned: set[dg.AssetKey] = field(default_factory=set)


# A step process started by the multiprocess executor finds the targets the CLI resolved here (not in the run's
# stored origin: URLs may hold passwords).
POSTGRES_ENV, MONGO_ENV = "NOVA_RUN_POSTGRES_URL", "NOVA_RUN_MONGO_URI"


@dataclass
class Runner:
    """How one command executes its Dagster runs: its run context, targets and executor, and the Definitions
    it built for them (a migrate executes up to three runs of them)."""

    ctx: RunContext
    spec_path: str
    postgres_url: str | None = None
    mongo_uri: str | None = None
    executor: str | None = None  # as requested; None: NOVA_EXECUTOR or the default
    _built: dg.Definitions | None = field(default=None, init=False, repr=False)
    _instance: dg.DagsterInstance | None = field(default=None, init=False, repr=False)

    @classmethod
    def for_spec(cls, spec: Spec, spec_path: str, postgres_url: str | None = None, mongo_uri: str | None = None,
                 executor: str | None = None) -> Runner:
        return cls(RunContext.for_spec(spec), spec_path, postgres_url, mongo_uri, executor)

    @property
    def executor_name(self) -> str:
        """The executor runs get: the requested one, unless targets or the machine force in_process."""
        return executor_name(self.ctx.spec, self.executor, self.mongo_uri)

    @property
    def instance(self) -> dg.DagsterInstance:
        """The Dagster instance the command's runs are recorded in (dagster_storage.dagster_instance), opened once."""
        if self._instance is None:
            self._instance = dagster_instance()
        return self._instance

    def definitions(self) -> dg.Definitions:
        """build_definitions of the spec for this command (in-process runs share its run context)."""
        if self._built is None:
            self._built = build_definitions(self.ctx.spec, self.spec_path, postgres_url=self.postgres_url,
                                            mongo_uri=self.mongo_uri, executor=self.executor_name, ctx=self.ctx)
        return self._built

    def execute(self, job_def: dg.JobDefinition, *, instance: dg.DagsterInstance, run_id: str, tags: dict,
                asset_selection: list[dg.AssetKey] | None, checks: set[dg.AssetCheckKey] | None = None,
                run_config: dict | None = None, partition_key: str | None = None):
        """Execute `job_def` (its `asset_selection` and `checks`; all when None) as run `run_id`: in this
        process, or, multiprocess, as a reconstructable job whose steps rebuild it from the spec file."""
        run_config = run_config or QUIET
        if self.executor_name == "in_process":
            if checks is not None:
                job_def = job_def.get_subset(asset_selection=set(asset_selection), asset_check_selection=checks)
                asset_selection = None
            return job_def.execute_in_process(run_config=run_config, instance=instance, raise_on_error=False,
                                              asset_selection=asset_selection, run_id=run_id, tags=tags,
                                              partition_key=partition_key)
        os.environ.update({k: v for k, v in ((POSTGRES_ENV, self.postgres_url), (MONGO_ENV, self.mongo_uri)) if v})
        recon = dg.build_reconstructable_job(__name__, reconstruct_job.__name__,
                                             reconstructable_kwargs={"spec_path": self.spec_path, "job": job_def.name})
        if asset_selection is not None or checks is not None:
            keys = set(asset_selection if asset_selection is not None else job_def.asset_layer.executable_asset_keys)
            recon = recon.get_subset(asset_selection=keys, asset_check_selection=checks)
        if partition_key:
            tags = {**tags, "dagster/partition": partition_key}
        run = instance.create_run_for_job(
            job_def=recon.get_definition(), run_id=run_id, run_config=run_config, tags=tags,
            asset_selection=frozenset(asset_selection) if asset_selection is not None else None,
            job_code_origin=recon.get_python_origin())
        return execute_run(recon, run, instance)


def reconstruct_job(spec_path: str, job: str) -> dg.JobDefinition:
    """The job as a multiprocess step rebuilds it: from the spec file, with the targets the CLI resolved."""
    return build_definitions(load_spec(spec_path), spec_path, postgres_url=os.environ.get(POSTGRES_ENV),
                             mongo_uri=os.environ.get(MONGO_ENV), executor="multiprocess").resolve_job_def(job)


def _table_of_step(spec: Spec, step_key: str) -> str | None:
    for name, _ in spec.table_items():
        if step_key == f"migrate_{K.key_part(name)}":
            return name
    return None


def _root_cause(err) -> str:
    """The innermost error's one-line message (Dagster wraps the user's exception)."""
    while err is not None and err.cause is not None:
        err = err.cause
    if err is None or not err.message.strip():
        return "step failed"
    return err.message.strip().splitlines()[-1]


def _check_row(ev) -> dict:
    """An asset check evaluation as a report check row."""
    meta = {k: getattr(v, "value", v) for k, v in (ev.metadata or {}).items()}
    return {"table": "/".join(ev.asset_key.path), "check": ev.check_name, "passed": ev.passed,
            "severity": ev.severity.value if ev.severity else None,
            "detail": str(meta.get("detail", "")), "failing_keys": meta.get("failing_keys", [])}


def outcome_of(spec: Spec, result: dg.ExecuteInProcessResult) -> RunOutcome:
    """What an executed run did: its failures by table (or step), check results, materialized and planned assets."""
    out = RunOutcome(run_id=result.run_id, success=result.success,
                     migration_id=result.dagster_run.tags.get(K.MIGRATION_TAG, result.run_id))
    for ev in result.get_step_failure_events():
        message = redact(_root_cause(ev.step_failure_data.error))
        table = _table_of_step(spec, ev.step_key)
        out.errors[table or ev.step_key] = message
    out.checks = [_check_row(ev) for ev in result.get_asset_check_evaluations()]
    out.materialized = {e.asset_key for e in result.get_asset_materialization_events()}
    out.planned = set(result.dagster_run.asset_selection or result.job_def.asset_layer.executable_asset_keys)
    return out


def run_migration(spec: Spec, spec_path: str, *, job: str = "migrate", postgres_url: str | None = None,
                  mongo_uri: str | None = None, asset_selection: list[dg.AssetKey] | None = None,
                  exclude: set[dg.AssetKey] = frozenset(), tags: dict[str, str] | None = None,
                  extra_checks: set[dg.AssetCheckKey] = frozenset(), runner: Runner | None = None) -> RunOutcome:
    """Execute a migration job of the spec (its `asset_selection`, or all but `exclude`; plus `extra_checks`)
    against the persistent instance, with the runner's executor (a new runner for these arguments when None).
    `tags` carry the run token and the migration id (a new migration when absent)."""
    runner = runner or Runner.for_spec(spec, spec_path, postgres_url, mongo_uri)
    job_def = runner.definitions().resolve_job_def(job)
    instance, run_id = runner.instance, str(uuid.uuid4())
    graph = job_def.asset_layer.asset_graph
    if asset_selection is None and exclude:
        asset_selection = sorted(job_def.asset_layer.executable_asset_keys - exclude)
    keys = set(asset_selection if asset_selection is not None else job_def.asset_layer.executable_asset_keys)
    checks = {c for c in graph.asset_check_keys if c.asset_key in keys} | set(extra_checks)
    tags = {"nova/spec": spec_path, "nova/cli": "1", K.MIGRATION_TAG: run_id, "nova/executor": runner.executor_name,
            **(tags or {})}
    with run_progress(instance, run_id, [*keys, *checks]):
        result = runner.execute(job_def, instance=instance, run_id=run_id, tags=tags, asset_selection=asset_selection,
                                checks=checks if extra_checks else None)
    return outcome_of(spec, result)


def migration_runs(instance: dg.DagsterInstance, migration_id: str) -> list[dg.DagsterRun]:
    """Every run of a migration, oldest first."""
    runs = instance.get_runs(filters=dg.RunsFilter(tags={K.MIGRATION_TAG: migration_id}))
    first = instance.get_run_by_id(migration_id)
    return sorted({r.run_id: r for r in [*runs, *([first] if first else [])]}.values(),
                  key=lambda r: instance.get_run_record_by_id(r.run_id).create_timestamp)


def migration_checks(instance: dg.DagsterInstance, migration_id: str) -> list[dict]:
    """The check results of a whole migration: per check, the evaluations of the last run that evaluated it."""
    latest: dict[tuple, list[dict]] = {}
    for run in migration_runs(instance, migration_id):
        evaluated: dict[tuple, list[dict]] = {}
        for rec in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
            ev = rec.dagster_event.event_specific_data
            evaluated.setdefault((ev.asset_key, ev.check_name), []).append(_check_row(ev))
        latest.update(evaluated)
    return [row for rows in latest.values() for row in rows]


def record_status(instance: dg.DagsterInstance, migration_id: str, status: str) -> None:
    """Tag a migration's first run with the status of its report (what `resume` then tells)."""
    if instance.get_run_by_id(migration_id) is not None:
        instance.add_run_tags(migration_id, {STATUS_TAG: status})


def last_unfinished_run(instance: dg.DagsterInstance, run_id: str | None) -> dg.DagsterRun:
    """The given run, or the newest migration run that failed or never finished (e.g. killed)."""
    if run_id:
        run = instance.get_run_by_id(run_id)
        if run is None:
            raise ValueError(f"no run {run_id} in {os.environ.get('DAGSTER_HOME')}")
        return run
    unfinished = {dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELED}
    for run in instance.get_runs(limit=50):
        if run.job_name in MIGRATION_JOBS:
            if run.status in unfinished:
                return run
            if run.status == dg.DagsterRunStatus.SUCCESS:
                first = instance.get_run_by_id(run.tags.get(K.MIGRATION_TAG, run.run_id)) or run
                if first.tags.get(STATUS_TAG) == "failed":
                    raise ValueError(f"nothing to resume: migration {first.run_id} ran every step but its report says "
                                     "failed; fix what the report names and run `nova-pipeline migrate` again")
                raise ValueError(f"nothing to resume: the last migration run ({run.run_id}) succeeded")
    raise ValueError("nothing to resume: no migration run was started (run `nova-pipeline migrate`)")


def resume_migration(spec: Spec, spec_path: str, run_id: str | None, *, postgres_url: str | None = None,
                     mongo_uri: str | None = None, tags: dict[str, str] | None = None,
                     force: bool = False, runner: Runner | None = None) -> RunOutcome:
    """Re-execute what an unfinished run did not materialize (and the checks of what it did that never ran);
    what it finished is kept. The new run belongs to the same migration.

    Raises TargetChanged when another migration has loaded tables this one had loaded (resuming would mix
    two migrations), unless `force`.
    """
    runner = runner or Runner.for_spec(spec, spec_path, postgres_url, mongo_uri)
    instance = runner.instance
    run = last_unfinished_run(instance, run_id)
    migration_id = run.tags.get(K.MIGRATION_TAG, run.run_id)
    graph = runner.definitions().resolve_job_def(run.job_name).asset_layer.asset_graph
    planned = set(run.asset_selection or graph.executable_asset_keys)
    done = {e.dagster_event.asset_key for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
            if e.dagster_event and e.dagster_event.asset_key}
    evaluated = {(c["table"], c["check"]) for c in migration_checks(instance, migration_id)}
    unchecked = {c for c in graph.asset_check_keys if c.asset_key in planned & done
                 and ("/".join(c.asset_key.path), c.name) not in evaluated}
    loaded = [name for name, _ in spec.table_items("postgres") if K.target_key(spec, name) in done]
    if postgres_url and loaded and not force:
        with connect_postgres(postgres_url) as conn:
            others = target_state.loaded_by_others(conn, spec, loaded, migration_id)
        if others:
            raise target_state.TargetChanged(
                f"cannot resume migration {migration_id}: another migration has since loaded {others}; run "
                "`nova-pipeline migrate` to migrate this source again (or resume --force to mix them)")
    if run.status == dg.DagsterRunStatus.STARTED:
        instance.report_run_failed(run, "interrupted: superseded by nova-pipeline resume")
    todo = sorted(planned - done, key=lambda k: k.to_user_string())
    if not todo and not unchecked:
        raise ValueError(f"run {run.run_id} materialized everything it planned")
    return run_migration(spec, spec_path, job=run.job_name, postgres_url=postgres_url, mongo_uri=mongo_uri,
                         asset_selection=todo, extra_checks=unchecked,
                         tags={**(tags or {}), K.MIGRATION_TAG: migration_id, "nova/resumed_from": run.run_id},
                         runner=runner)
