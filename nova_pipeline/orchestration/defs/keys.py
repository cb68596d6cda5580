"""The names the Dagster layer and its runners share: asset keys of the phases and tables, the migration's run
tags, and whom a run's writes belong to."""

import hashlib

import dagster as dg

from nova_pipeline.core import identifiers, run_lock
from nova_pipeline.core.spec import Spec
from nova_pipeline.pipeline.context import RunIds
from nova_pipeline.pipeline.table import CLEAN, RAW, TARGET

SNAPSHOT = dg.AssetKey(["source", "snapshot"])
PROFILE = dg.AssetKey(["source", "profile"])
PG_SCHEMA = dg.AssetKey(["setup", "postgres_schema"])
MONGO_COLLECTIONS = dg.AssetKey(["setup", "mongo_collections"])
PG_CONSTRAINTS = dg.AssetKey(["postgres", "constraints"])
APP_OBJECTS = dg.AssetKey(["postgres", "app_objects"])
SMOKE_TESTS = dg.AssetKey(["validation", "smoke_tests"])
REPORT = dg.AssetKey(["reports", "migration_report"])
MIGRATION_TAG = "nova/migration"  # run tag: the id of the migration's first run (orchestration/runs.py)
TABLE_TAG = "nova/table"  # op tag: the source table a step moves or checks


def table_tags(table: str) -> dict[str, str]:
    """The op tags naming the table of a per-table step."""
    return {TABLE_TAG: table}


def table_of(context) -> str:
    """The source table of the running per-table step (its op tag): step bodies hold no table of their own."""
    return context.op_def.tags[TABLE_TAG]


def migration_id(context) -> str:
    """The id of the migration this run belongs to: the report's run id, the quarantine rows' run_id."""
    return context.run.tags.get(MIGRATION_TAG, context.run_id)


def lock_token(context) -> str | None:
    """The migration lock's run token this run's commits must hold (core/run_lock.py); None outside migrate."""
    return context.run.tags.get(run_lock.RUN_TOKEN_TAG)


def run_ids(context) -> RunIds:
    """Whom the run's writes belong to: the run, its migration and the migration lock's token."""
    return RunIds(run_id=context.run_id, migration_id=migration_id(context), lock_token=lock_token(context))


def key_part(name: str) -> str:
    """A Dagster-safe name ([A-Za-z0-9_]); odd names get a short hash so they stay distinct."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in name)
    return safe if safe == name else f"{safe}_{hashlib.sha1(name.encode()).hexdigest()[:6]}"


def raw_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["staging", "raw", key_part(table)])


def clean_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["staging", "clean", key_part(table)])


def target_key(spec: Spec, table: str) -> dg.AssetKey | None:
    """Asset key of a table's target, None for tables embedded into a parent document."""
    t = spec.tables[table]
    if t.target == "postgres":
        return dg.AssetKey(["postgres", *map(key_part, identifiers.pg_table(spec, table))])
    if t.target == "mongo" and table not in spec.embedded_tables():
        return dg.AssetKey(["mongo", key_part(spec.targets.mongo.database),
                            key_part(identifiers.mongo_collection(spec, table))])
    return None


def phase_keys(spec: Spec, table: str) -> dict[str, dg.AssetKey | None]:
    """A table's phases (pipeline.table's RAW, CLEAN, TARGET) → the asset each materializes."""
    return {RAW: raw_key(table), CLEAN: clean_key(table), TARGET: target_key(spec, table)}
