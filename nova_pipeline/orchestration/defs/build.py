"""Spec → one Dagster Definitions: assets of the eight phases, checks, jobs, schedules, sensors."""


import dagster as dg

from nova_pipeline.core.run_context import RunContext
from nova_pipeline.orchestration.defs import assets as A
from nova_pipeline.orchestration.defs import keys as K
from nova_pipeline.orchestration.defs.app_objects import build_app_objects_defs
from nova_pipeline.orchestration.defs.backups import build_backup_defs
from nova_pipeline.orchestration.defs.checks import build_table_checks
from nova_pipeline.orchestration.defs.completion import build_completion_assets
from nova_pipeline.orchestration.defs.partitions import build_partitioned_defs
from nova_pipeline.orchestration.defs.resources import MongoResource, PostgresResource, nova_resource
from nova_pipeline.orchestration.executors import executor_name
from nova_pipeline.orchestration.defs.sensors import build_migration_chain_sensors, build_source_change_sensor
from nova_pipeline.pipeline.partition_range import partitioned_tables
from nova_pipeline.core.spec import Spec


def _table_checks(spec: Spec) -> list[dg.AssetChecksDefinition]:
    partitioned = partitioned_tables(spec)
    return [c for name, _ in spec.table_items() if (key := K.target_key(spec, name)) and name not in partitioned
            for c in build_table_checks(spec, name, key)]


def _job_keys(spec: Spec, target: str | None) -> list[dg.AssetKey]:
    keys = [K.SNAPSHOT, K.PROFILE]
    tables = spec.table_items(target)
    if target in (None, "postgres") and spec.table_items("postgres"):
        keys += [K.PG_SCHEMA, K.PG_CONSTRAINTS, K.APP_OBJECTS]
    if target in (None, "mongo") and spec.table_items("mongo"):
        keys.append(K.MONGO_COLLECTIONS)
    partitioned = partitioned_tables(spec)  # their own job: a run cannot mix partitioned and unpartitioned assets
    for name, _ in tables:
        if name in partitioned:
            continue
        keys += [K.raw_key(name), K.clean_key(name)] + ([k] if (k := K.target_key(spec, name)) else [])
    if target == "mongo":  # embedded children of mongo parents may themselves be declared elsewhere
        for child in spec.embedded_tables():
            keys += [K.raw_key(child), K.clean_key(child)]
    return list(dict.fromkeys(keys + [K.SMOKE_TESTS, K.REPORT]))


def build_jobs(spec: Spec) -> list:
    """`migrate` (everything) and, when both targets are used, `migrate_postgres` / `migrate_mongo`."""
    jobs = [dg.define_asset_job("migrate", selection=dg.AssetSelection.assets(*_job_keys(spec, None)),
                                description="All phases for every table: snapshot, setup, export, transform, load, "
                                            "constraints, checks, smoke tests, report.")]
    for target in ("postgres", "mongo"):
        if spec.table_items(target) and len({t.target for _, t in spec.table_items()}) > 1:
            jobs.append(dg.define_asset_job(
                f"migrate_{target}", selection=dg.AssetSelection.assets(*_job_keys(spec, target)),
                description=f"All phases for the tables that go to {target} only."))
    return jobs


# Imported once by the forkserver, so each step process starts with them loaded (Great Expectations, which
# every check step with expectations needs, after sqlalchemy.orm: GX imports the ORM, which has import cycles).
PRELOAD_MODULES = ["dagster", "pyarrow.parquet", "psycopg", "sqlalchemy.orm", "great_expectations",
                   "nova_pipeline.orchestration.runs"]


def executor_def(name: str) -> dg.ExecutorDefinition:
    """Dagster's executor of that name; multiprocess starts steps from a forkserver with PRELOAD_MODULES."""
    if name == "in_process":
        return dg.in_process_executor
    return dg.multiprocess_executor.configured(
        {"start_method": {"forkserver": {"preload_modules": PRELOAD_MODULES}}}, name="multiprocess")


def build_definitions(spec: Spec, spec_path: str, *, postgres_url: str | None = None,
                      mongo_uri: str | None = None, executor: str | None = None,
                      ctx: RunContext | None = None) -> dg.Definitions:
    """The code location for one spec; URLs given here override the spec/env resolution (CLI flags). `ctx` is
    the run context of an in-process run's caller; without it every step rebuilds one from `spec_path`."""
    partitioned, by_time = partitioned_tables(spec), build_partitioned_defs(spec)
    app_assets, app_checks = build_app_objects_defs(spec)
    checks = _table_checks(spec) + by_time["checks"] + app_checks
    check_keys = [k for c in checks for k in c.check_keys]
    assets = [*A.build_source_assets(spec), *A.build_setup_assets(spec), *by_time["assets"],
              *(A.build_table_assets(spec, name) for name, _ in spec.table_items() if name not in partitioned)]
    if (constraints := A.build_constraints_asset(spec)) is not None:
        assets.append(constraints)
    assets += app_assets
    assets += build_completion_assets(spec, check_keys)
    jobs = build_jobs(spec)
    migrate = jobs[0]
    schedules, sensors = [], [build_source_change_sensor(spec, migrate),
                              *build_migration_chain_sensors(spec, migrate, by_time["jobs"])]
    for extra in (build_backup_defs(migrate, spec), by_time):
        jobs += extra["jobs"]
        schedules += extra["schedules"]
        sensors += extra["sensors"]
    return dg.Definitions(
        assets=assets, asset_checks=checks, jobs=jobs, schedules=schedules, sensors=sensors,
        executor=executor_def(executor_name(spec, executor, mongo_uri)),
        resources={"nova": nova_resource(spec_path, ctx), "postgres": PostgresResource(url_override=postgres_url or ""),
                   "mongo": MongoResource(uri_override=mongo_uri or "")})
