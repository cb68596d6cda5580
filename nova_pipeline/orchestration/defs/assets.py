"""Asset factories: the eight migration phases as Dagster assets, built from the spec.

Per source table one multi-asset moves it through export → transform → load
(`staging/raw/<t>`, `staging/clean/<t>`, and its target), subsettable so each
phase can be re-materialized alone in the UI. Shared phases (snapshot,
profile, setup, constraints, smoke tests, report) are single assets.
"""


import dataclasses
import hashlib
import json
import time

import dagster as dg

from nova_pipeline.extract import export
from nova_pipeline.core import identifiers
from nova_pipeline.load import postgres_ddl
from nova_pipeline.transform import transform
from nova_pipeline.core.run_context import RunContext
from nova_pipeline.orchestration.defs.keys import (MONGO_COLLECTIONS, PG_CONSTRAINTS, PG_SCHEMA, PROFILE, SNAPSHOT,
                                                    clean_key, key_part, phase_keys, raw_key, run_ids,
                                                    table_of, table_tags, target_key)
from nova_pipeline.orchestration.defs.resources import MongoResource, Nova, PostgresResource
from nova_pipeline.orchestration.executors import IN_PROCESS_EXECUTORS
from nova_pipeline.pipeline import postgres as pipeline_postgres
from nova_pipeline.pipeline import source
from nova_pipeline.pipeline import table as pipeline_table
from nova_pipeline.pipeline.context import rate
from nova_pipeline.pipeline.table import CLEAN, RAW, TARGET
from nova_pipeline.report.preview import preview_markdown
from nova_pipeline.core.spec import Spec, TableSpec
from nova_pipeline.core.staging import Staging, for_spec

def staging_of(spec: Spec) -> Staging:
    """The staging area of the spec's source (relative paths resolve against the spec file)."""
    return for_spec(spec)


def code_version(*tables: TableSpec) -> str:
    """A short stable hash of the table specs that determine an asset's content."""
    text = json.dumps([t.model_dump(mode="json") for t in tables], sort_keys=True)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def build_source_assets(spec: Spec) -> list[dg.AssetsDefinition]:
    """Phase 1: the consistent snapshot and the storage-class profile."""

    @dg.asset(key=SNAPSHOT, group_name="source", kinds={"sqlite"},
              description="Consistent online copy of the SQLite source (backup API) with sha256, "
                          "integrity_check and foreign_key_check. Every export reads this copy, never the live file.")
    def source_snapshot(context: dg.AssetExecutionContext, nova: Nova) -> dg.MaterializeResult:
        snap = source.take_snapshot(nova, steps_here=context.job_def.executor_def.name in IN_PROCESS_EXECUTORS)
        if snap.integrity != ["ok"]:
            context.log.warning(f"integrity_check: {snap.integrity[:5]}")
        return dg.MaterializeResult(metadata={
            "path": dg.MetadataValue.path(nova.snapshot_location), "sha256": snap.sha256, "bytes": snap.bytes,
            "source": dg.MetadataValue.path(snap.source), "taken_at": snap.taken_at,
            "source_state": dg.MetadataValue.json(snap.source_state), "integrity_check": ", ".join(snap.integrity[:5]),
            "foreign_key_violations": len(snap.foreign_key_violations), "seconds": round(snap.seconds, 3)})

    @dg.asset(key=PROFILE, group_name="source", kinds={"sqlite"}, deps=[SNAPSHOT],
              description="Per table row counts and per column storage classes (typeof) of the snapshot: "
                          "what the casts will meet.")
    def source_profile(nova: Nova) -> dg.MaterializeResult:
        profile = source.profile_source(nova)
        counts, days = profile["rows_per_table"], profile["partition_days"]
        return dg.MaterializeResult(metadata={
            "dagster/row_count": sum(counts.values()), "rows_per_table": dg.MetadataValue.json(counts),
            "storage_classes": dg.MetadataValue.json(profile["storage_classes"]),
            **({"partition_days": dg.MetadataValue.json(days)} if days else {})})

    return [source_snapshot, source_profile]


def build_setup_assets(spec: Spec) -> list[dg.AssetsDefinition]:
    """Phase 2: target schemas, tables and collections (idempotent)."""
    out = []
    if spec.table_items("postgres"):
        @dg.asset(key=PG_SCHEMA, group_name="setup", kinds={"postgres"}, deps=[PROFILE],
                  code_version=code_version(*[t for _, t in spec.table_items("postgres")]),
                  description="Schemas and tables from the spec (columns, types, NOT NULL, defaults, partitioned "
                              "parents); keys, indexes and FKs come after the data. Unchanged tables are kept.")
        def postgres_schema(context: dg.AssetExecutionContext, nova: Nova, postgres: PostgresResource):
            actions, failed = pipeline_postgres.create_schema(nova, postgres=postgres, run=run_ids(context))
            if failed:
                context.log.error(failed)
            for a in actions:
                context.log.info(a)
            return dg.MaterializeResult(metadata={
                "actions": dg.MetadataValue.md("\n".join(f"- {a}" for a in actions) or "none"), "failed": failed})

        out.append(postgres_schema)
    if spec.table_items("mongo"):
        @dg.asset(key=MONGO_COLLECTIONS, group_name="setup", kinds={"mongodb"}, deps=[PROFILE],
                  code_version=code_version(*[t for _, t in spec.table_items("mongo")]),
                  description="MongoDB collections with JSON Schema validators, indexes and TTL indexes "
                              "(time-series collections where the server supports them).")
        def mongo_collections(context: dg.AssetExecutionContext, nova: Nova, mongo: MongoResource):
            from nova_pipeline.load import mongo_setup

            actions = mongo_setup.setup_collections(mongo.database(nova.spec), nova.spec)
            if mongo.is_mock(nova.spec):
                actions.append("documents go to the in-process MongoDB double (mongomock), not a server")
            return dg.MaterializeResult(metadata={"actions": dg.MetadataValue.md("\n".join(f"- {a}" for a in actions) or "none")})

        out.append(mongo_collections)
    return out


def target_deps(spec: Spec, table: str, t: TableSpec) -> list[dg.AssetKey]:
    """What a table's load waits for: its clean files, the setup, and its parents' loads (or embedded children)."""
    if t.target == "postgres":
        # Load parents first (FK order); a cycle's back edge is dropped: constraints come after all data anyway.
        earlier = postgres_ddl.fk_order(spec)
        earlier = set(earlier[: earlier.index(table)])
        parents = [fk.references for fk in t.foreign_keys if fk.references in earlier]
        return [clean_key(table), PG_SCHEMA, *(k for p in dict.fromkeys(parents) if (k := target_key(spec, p)))]
    children = [e.table for e in _all_embeds(t)]
    return [clean_key(table), MONGO_COLLECTIONS, *(clean_key(c) for c in children)]


def _all_embeds(t: TableSpec):
    stack = list(t.embed)
    while stack:
        e = stack.pop()
        yield e
        stack.extend(e.embed)


def build_table_assets(spec: Spec, table: str) -> dg.AssetsDefinition:
    """Phases 3–5 for one table: export, transform and load as one subsettable multi-asset."""
    t = spec.tables[table]
    tkey = target_key(spec, table)
    kind = {"postgres": "postgres", "mongo": "mongodb"}[t.target]
    target_label = (".".join(identifiers.pg_table(spec, table)) if t.target == "postgres"
                    else identifiers.mongo_collection(spec, table)) if tkey else f"embedded into its parent in {t.target}"
    version = code_version(t)
    tags = {k: v for k, v in t.tags.items()}
    about = f" {t.description}" if t.description else ""
    specs = [
        dg.AssetSpec(raw_key(table), deps=[SNAPSHOT], group_name="staging", kinds={"sqlite", "parquet"},
                     code_version=version, owners=t.owners, tags=tags,
                     description=f"Table `{table}` exported from the SQLite snapshot to zstd Parquet in bounded "
                                 f"Arrow batches, values exactly as stored.{about}"),
        dg.AssetSpec(clean_key(table), deps=[raw_key(table)], group_name="staging", kinds={"parquet"},
                     code_version=version, owners=t.owners, tags=tags,
                     description=f"Table `{table}` cast to its target types; rows that cannot be cast go to "
                                 f"staging/quarantine/{table} with column, raw value and reason."),
    ]
    if tkey:
        specs.append(dg.AssetSpec(tkey, deps=target_deps(spec, table, t), group_name=t.target if t.target == "postgres" else "mongodb",
                                  kinds={kind}, code_version=version, owners=t.owners, tags=tags,
                                  description=f"Table `{table}` loaded into {t.target} `{target_label}`; a re-run "
                                              f"replaces the content, never duplicates it.{about}"))

    return dg.multi_asset(name=f"migrate_{key_part(table)}", specs=specs, can_subset=True, op_tags=table_tags(table),
                          description=f"Export, transform and load `{table}`.")(migrate_table_step)


def migrate_table_step(context: dg.AssetExecutionContext, nova: Nova, postgres: PostgresResource, mongo: MongoResource):
    """The step of one table's multi-asset: the selected phases of pipeline.table.migrate_table, each materialized."""
    table = table_of(context)
    keys = phase_keys(nova.spec, table)
    phases = [phase for phase, key in keys.items() if key in context.selected_asset_keys]
    for phase, res in pipeline_table.migrate_table(nova, table, postgres=postgres, mongo=mongo,
                                                   run=run_ids(context), phases=phases):
        yield dg.MaterializeResult(asset_key=keys[phase], metadata=METADATA[phase](nova, table, res))


def _raw_metadata(ctx: RunContext, table: str, r: export.ExportResult) -> dict:
    return {"dagster/row_count": r.rows, "bytes": r.bytes, "seconds": round(r.seconds, 3),
            "rows_per_s": rate(r.rows, r.seconds), "path": dg.MetadataValue.path(ctx.staging.dir("raw", table)),
            "preview": dg.MetadataValue.md(preview_markdown(ctx.staging, "raw", table))}


def _clean_metadata(ctx: RunContext, table: str, r: transform.TransformResult) -> dict:
    stg, columns = ctx.staging, ctx.spec.tables[table].columns
    return {"dagster/row_count": r.rows_out, "rows_in": r.rows_in, "quarantined": r.quarantined,
            "quarantine_reasons": dg.MetadataValue.json(r.reasons), "seconds": round(r.seconds, 3),
            "facts_seconds": round(r.facts_seconds, 3),
            "rows_per_s": rate(r.rows_in, r.seconds), "path": dg.MetadataValue.path(stg.dir("clean", table)),
            "preview": dg.MetadataValue.md(preview_markdown(stg, "clean", table,
                                                            {(c.name or n): c.type for n, c in columns.items()})),
            **({"quarantine_preview": dg.MetadataValue.md(preview_markdown(stg, "quarantine", table))}
               if r.quarantined else {})}


def _target_metadata(ctx: RunContext, table: str, done: pipeline_table.Loaded) -> dict:
    return {"dagster/row_count": done.rows, "seconds": round(done.seconds, 3),
            "rows_per_s": rate(done.rows, done.seconds), **done.where}


METADATA = {RAW: _raw_metadata, CLEAN: _clean_metadata, TARGET: _target_metadata}  # a phase's result → its metadata


def build_constraints_asset(spec: Spec) -> dg.AssetsDefinition | None:
    """Phase 5 tail: keys, indexes and FKs once every PostgreSQL table holds its data."""
    keys = [k for n, _ in spec.table_items("postgres") if (k := target_key(spec, n))]
    if not keys:
        return None

    @dg.asset(key=PG_CONSTRAINTS, deps=keys, group_name="postgres", kinds={"postgres"},
              code_version=code_version(*[t for _, t in spec.table_items("postgres")]),
              description="Primary keys, unique, partial and expression indexes, CHECKs and foreign keys, built after "
                          "the data (CHECKs and FKs the rows break are added NOT VALID and reported); identity "
                          "columns restarted where SQLite would go on.")
    def postgres_constraints(context: dg.AssetExecutionContext, nova: Nova, postgres: PostgresResource):
        started = time.perf_counter()
        rep = pipeline_postgres.add_constraints(nova, postgres=postgres, run=run_ids(context))
        for line in rep.untranslated:
            context.log.warning(f"not translated: {line}")
        return dg.MaterializeResult(metadata={
            "seconds": round(time.perf_counter() - started, 3),
            "identity_restarts": dg.MetadataValue.json(rep.identity_restarts),
            "not_translated": dg.MetadataValue.md("\n".join(f"- {u}" for u in rep.untranslated) or "none"),
            "report": dg.MetadataValue.json(dataclasses.asdict(rep))})

    return postgres_constraints
