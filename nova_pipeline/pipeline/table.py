"""One table through export → transform → load: from the snapshot to staging to its target."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from nova_pipeline.core import identifiers
from nova_pipeline.extract import export
from nova_pipeline.load import postgres_ddl, postgres_load
from nova_pipeline.pipeline.handoff import Handoff
from nova_pipeline.pipeline.context import Context, MongoTarget, PostgresTarget, RunIds
from nova_pipeline.transform import transform
from nova_pipeline.validate import facts_worker
from nova_pipeline.validate.source_facts import cached_source_facts

RAW, CLEAN, TARGET = "raw", "clean", "target"
PHASES = (RAW, CLEAN, TARGET)


@dataclass(frozen=True)
class Loaded:
    """Rows (documents) now in the target, the seconds it took and where they went."""

    rows: int
    seconds: float
    where: dict[str, Any] = field(default_factory=dict)


def has_own_target(spec, table: str) -> bool:
    """True unless the table is embedded into a parent document (or skipped)."""
    t = spec.tables[table]
    return t.target == "postgres" or (t.target == "mongo" and table not in spec.embedded_tables())


def export_table(ctx: Context, table: str, sink: Handoff | None = None) -> export.ExportResult:
    """The table's rows from the snapshot into raw Parquet, as stored (each batch also handed to `sink`)."""
    s = ctx.spec
    return export.export_table(ctx.local_snapshot(), table, list(s.tables[table].columns), ctx.staging,
                               batch_rows=s.batch_rows, facts=ctx.facts, sink=sink)


def transform_table(ctx: Context, table: str, run_id: str) -> transform.TransformResult:
    """Raw → clean Parquet; rows the casts refuse go to the quarantine, stamped with `run_id`. A PostgreSQL
    table's source facts go to the facts store for its checks (a MongoDB load may still quarantine orphans or
    oversize documents: its facts are read at check time)."""
    return _with_facts(ctx, table, transform.transform_table(ctx.spec, table, ctx.staging, run_id=run_id))


def _with_facts(ctx: Context, table: str, res: transform.TransformResult) -> transform.TransformResult:
    """A PostgreSQL table's transform result once its source facts are begun in the facts worker, or, without
    one, are in the facts store (with their seconds)."""
    if ctx.spec.tables[table].target != "postgres":
        return res
    if (pending := facts_worker.submit(ctx.spec, table, ctx.staging)) is not None:
        ctx.pending_facts[table] = pending
        return res
    started = time.perf_counter()
    cached_source_facts(ctx.spec, table, ctx.staging, facts=ctx.facts)
    return dataclasses.replace(res, facts_seconds=time.perf_counter() - started)


def table_facts(ctx: Context, table: str) -> dict[str, Any]:
    """A table's source facts for its checks: those its transform began in the facts worker once done, else
    read from its staged files now. A worker that failed is not trusted: the facts are then computed here
    (raising the error again if it was the data's)."""
    pending = ctx.pending_facts.pop(table, None)
    if pending is not None:
        with contextlib.suppress(Exception):  # this process's own computation decides
            pending.result()
    return cached_source_facts(ctx.spec, table, ctx.staging, facts=ctx.facts)


def load_table(ctx: Context, table: str, *, postgres: PostgresTarget, mongo: MongoTarget, run: RunIds) -> Loaded:
    """Clean Parquet → the table's target, replacing what an earlier load left; PostgreSQL also gets the quarantine rows."""
    s, stg, started = ctx.spec, ctx.staging, time.perf_counter()
    if s.tables[table].target == "postgres":
        with postgres.connect(s) as conn:
            postgres_ddl.create_tables(conn, s, [table])  # no-op when set up; raises this table's DDLError
            conn.commit()
        res = postgres_load.load_table(postgres.url(s), s, table, stg, lock_token=run.lock_token,
                                       migration=run.migration_id)
        with postgres.connect(s) as conn:
            postgres_load.store_quarantine(conn, stg, table, run.migration_id, run.lock_token)
            conn.commit()
        rows, where = res.rows, {"table": ".".join(identifiers.pg_table(s, table))}
    else:
        from nova_pipeline.load import mongo_load

        res = mongo_load.load_collection(mongo.database(s), s, table, stg)
        rows, where = res.documents, {"collection": identifiers.mongo_collection(s, table),
                                      "quarantined_orphans": res.quarantined_orphans, "in_process_double": mongo.is_mock(s)}
    return Loaded(rows, time.perf_counter() - started, where)


def migrate_table(ctx: Context, table: str, *, postgres: PostgresTarget, mongo: MongoTarget, run: RunIds,
                  phases=PHASES) -> Iterator[tuple[str, Any]]:
    """Export, transform and load `table` (the `phases` asked for, in that order; an embedded table has no load),
    yielding (phase, its result) as each is done. All three of an unpartitioned PostgreSQL table run side by side
    (streamed_table)."""
    t = ctx.spec.tables[table]
    if set(PHASES) <= set(phases) and t.target == "postgres" and t.partition is None:
        yield from streamed_table(ctx, table, postgres=postgres, run=run)
        return
    if RAW in phases:
        yield RAW, export_table(ctx, table)
    if CLEAN in phases:
        yield CLEAN, transform_table(ctx, table, run.run_id)
    if TARGET in phases and has_own_target(ctx.spec, table):
        yield TARGET, load_table(ctx, table, postgres=postgres, mongo=mongo, run=run)


def streamed_table(ctx: Context, table: str, *, postgres: PostgresTarget, run: RunIds) -> Iterator[tuple[str, Any]]:
    """Export, transform and load an unpartitioned PostgreSQL table in three threads, each batch handed on as soon
    as it is read or cast (SQLite, Arrow, Parquet and the COPY release the GIL), the raw and clean Parquet written
    on the way; yields (phase, result) of each phase as migrate_table does.

    A failure stops only the phases after it: the export and the transform still complete their files, as when
    the phases run one after another. A load that lost its connection is retried from the clean files."""
    s, stg = ctx.spec, ctx.staging
    with postgres.connect(s) as conn:
        postgres_ddl.create_tables(conn, s, [table])  # no-op when set up; raises this table's DDLError
        conn.commit()
    raw_to_clean, clean_to_target = Handoff(), Handoff()

    def cast() -> transform.TransformResult:
        try:
            res = transform.transform_table(s, table, stg, run_id=run.run_id, sink=clean_to_target,
                                            raw=(raw_to_clean.wait_header(), iter(raw_to_clean)))
        except BaseException as e:
            raw_to_clean.abandon()
            clean_to_target.end(e)
            raise
        clean_to_target.end()
        return res

    def copy() -> postgres_load.LoadResult:
        try:
            return postgres_load.load_table(postgres.url(s), s, table, stg, lock_token=run.lock_token,
                                            migration=run.migration_id, batches=iter(clean_to_target))
        except BaseException:
            clean_to_target.abandon()
            raise

    with ThreadPoolExecutor(2, thread_name_prefix=f"stream-{table}") as pool:
        casting, copying = pool.submit(cast), pool.submit(copy)
        try:
            exported = export_table(ctx, table, sink=raw_to_clean)
        except BaseException as e:
            raw_to_clean.end(e)
            raise
        raw_to_clean.end()
    # Each phase's own time: without the waits for the phase before it and for the one after it.
    yield RAW, dataclasses.replace(exported, seconds=exported.seconds - raw_to_clean.producer_waited)
    cleaned = casting.result()
    yield CLEAN, _with_facts(ctx, table, dataclasses.replace(
        cleaned, seconds=cleaned.seconds - raw_to_clean.consumer_waited - clean_to_target.producer_waited))
    try:
        loaded = copying.result()
        waited = clean_to_target.consumer_waited
    except postgres_load.ConnectionLost:
        loaded = postgres_load.load_table(postgres.url(s), s, table, stg, lock_token=run.lock_token,
                                          migration=run.migration_id)
        waited = 0.0
    with postgres.connect(s) as conn:
        postgres_load.store_quarantine(conn, stg, table, run.migration_id, run.lock_token)
        conn.commit()
    yield TARGET, Loaded(loaded.rows, max(loaded.seconds - waited, 0.0),
                         {"table": ".".join(identifiers.pg_table(s, table))})
