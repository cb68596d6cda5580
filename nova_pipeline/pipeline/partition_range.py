"""A range of time partitions of one table through export → transform → load, three phases side by side.

Each partition is exported from SQLite by its exact time window
(load/partitions.py) and transformed; a partition is loaded by deleting and
inserting its window in one transaction. A range into PostgreSQL is loaded as
one window (keys and indexes rebuilt after the data).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

from psycopg import sql

from nova_pipeline.core import identifiers
from nova_pipeline.core.scan_cache import FactsStore
from nova_pipeline.core.spec import Spec
from nova_pipeline.core.staging import Staging
from nova_pipeline.extract import export, snapshot
from nova_pipeline.load import partitions, postgres_ddl, postgres_load
from nova_pipeline.pipeline.context import Context, MongoTarget, PostgresTarget, RunIds
from nova_pipeline.pipeline.table import CLEAN, PHASES, RAW, TARGET, has_own_target
from nova_pipeline.transform import transform
from nova_pipeline.validate.source_facts import cached_source_facts

UNPLACED = "unplaced"  # staging partition of the rows no window holds (unreadable timestamps): all quarantined
RANGE_CHUNK = 7  # partitions exported by one query of a range run: each keeps a Parquet writer (and its buffers) open


@dataclass
class RangeResult:
    """Per phase: rows per partition key (raw also holds UNPLACED after a range) and seconds."""

    rows: dict[str, dict[str, int]] = field(default_factory=lambda: {p: {} for p in PHASES})
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))


def partitioned_tables(spec: Spec) -> list[str]:
    """Migrated tables with `partition` and a target of their own, in spec order."""
    return [n for n, t in spec.table_items() if t.partition and has_own_target(spec, n)]


def source_path(spec: Spec) -> Path:
    """The live SQLite source of the spec."""
    return spec.resolve(spec.source.sqlite)


def first_day(spec: Spec, table: str, facts: FactsStore | None = None) -> date:
    """partition_range's first day from the live source (else the snapshot, else today)."""
    if spec.tables[table].partition.start:
        return date.fromisoformat(spec.tables[table].partition.start)
    found = [p for p in (source_path(spec), snapshot.snapshot_path(spec)) if p.exists()]
    if not found:
        return datetime.now(timezone.utc).date()
    return partitions.partition_range(spec, table, found[0], facts)[0]


def ensure_table(postgres: PostgresTarget, spec: Spec, table: str) -> None:
    """Create the partitioned parent when missing; an existing one is never re-created by a partition run."""
    with postgres.connect(spec) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (sql.Identifier(*identifiers.pg_table(spec, table))
                                                          .as_string(conn),)).fetchone()[0]
        if exists is None:
            postgres_ddl.create_tables(conn, spec, [table])
            conn.commit()


def export_window(ctx: Context, table: str, source: Path, key: str, where: tuple[str, tuple]) -> int:
    """Rows of one partition (`where`: its window filter) exported into its raw files."""
    s = ctx.spec
    return export.export_table(str(source), table, list(s.tables[table].columns), ctx.staging, batch_rows=s.batch_rows,
                               partition=key, where=where, facts=ctx.facts).rows


def export_range(ctx: Context, table: str, source: Path, windows: dict[str, tuple[datetime, datetime]],
                 rowids: partitions.RowidSpans | None, exported: Callable[[list[str]], None]) -> dict[str, int]:
    """Export many partitions with one query per RANGE_CHUNK of them (rowid spans keep each query to its days),
    each row into its day's partition; `exported` is called with each chunk's keys once their files are written."""
    spec, stg = ctx.spec, ctx.staging
    columns = list(spec.tables[table].columns)
    classes = export.table_storage_classes(str(source), table, columns, ctx.facts)  # one scan, not one per window
    keys, rows = list(windows), {}
    for i in range(0, len(keys), RANGE_CHUNK):
        chunk = keys[i:i + RANGE_CHUNK]
        days = {d: key for key in chunk for d in partitions.window_days(windows[key])}
        # Rows are routed by their day, computed once per row; other days' rows are skipped.
        where = None if rowids is None else (f"{rowids[0]} BETWEEN ? AND ?", partitions.rowid_span(rowids, days))
        day_sql = (partitions.rowid_day_expression(source, spec, table, days, ctx.facts)
                   or partitions.day_expression(spec, table))
        rows |= export.export_days(str(source), table, columns, stg, where=where, day_sql=day_sql, keys=days,
                                   batch_rows=spec.batch_rows, classes=classes)
        exported(chunk)
    return rows


def transform_window(spec: Spec, table: str, stg: Staging, key: str, run_id: str) -> int:
    """Rows of one partition cast into its clean files (the rest quarantined)."""
    return transform.transform_table(spec, table, stg, partition=key, run_id=run_id).rows_out


def load_window(spec: Spec, table: str, stg: Staging, key: str, window: tuple[datetime, datetime], *,
                postgres: PostgresTarget, mongo: MongoTarget, run: RunIds) -> int:
    """Replace one partition's window in the target by its clean rows."""
    if spec.tables[table].target == "postgres":
        return postgres_load.load_table(postgres.url(spec), spec, table, stg, partition=key, window=window,
                                        lock_token=run.lock_token, migration=run.migration_id).rows
    from nova_pipeline.load import mongo_load

    return mongo_load.load_collection(mongo.database(spec), spec, table, stg, partition=key, window=window).documents


def unplaced(ctx: Context, table: str, source: Path, run_id: str) -> int:
    """Export and transform the rows without a window; the transform must quarantine every one of them."""
    spec, stg = ctx.spec, ctx.staging
    if partitions.day_spans(source, spec, table, ctx.facts)[1].get(None, (0,))[0] == 0:
        for kind in ("raw", "clean", "quarantine"):
            stg.clear(kind, table, UNPLACED)
        return 0
    rows = export_window(ctx, table, source, UNPLACED, partitions.unplaced_filter(spec, table))
    res = transform.transform_table(partitions.with_partition_column_required(spec, table), table, stg,
                                    partition=UNPLACED, run_id=run_id)
    if res.rows_out:
        raise partitions.PartitionError(f"table {table!r}: {res.rows_out} row(s) outside every window were readable "
                                        "by the casts; the window filter and casts.py disagree")
    return rows


def _passed_to(target: Future) -> Callable[[Future], None]:
    """A done-callback handing a future's result or exception on to `target`."""
    def pass_on(done: Future) -> None:
        try:
            if done.exception() is None:
                target.set_result(done.result())
            else:
                target.set_exception(done.exception())
        except InvalidStateError:  # the export failed first and said so
            pass
    return pass_on


def load_partition_range(ctx: Context, table: str, keys: list[str], *, source: Path, postgres: PostgresTarget,
                         mongo: MongoTarget, run: RunIds, phases=PHASES) -> RangeResult:
    """Export (from `source`), transform and load the partitions `keys` of `table` (the `phases` asked for)."""
    s, stg, out = ctx.spec, ctx.staging, RangeResult()
    t = s.tables[table]
    if TARGET in phases and t.target == "postgres":
        ensure_table(postgres, s, table)
    windows = {key: postgres_load.partition_window(s, table, key) for key in keys}

    @contextmanager
    def clock(phase: str):
        started = time.perf_counter()
        yield
        out.seconds[phase] += time.perf_counter() - started

    def transform_one(key: str) -> int:
        with clock(CLEAN):
            return transform_window(s, table, stg, key, run.run_id)

    # Partitions are transformed in a second thread as soon as their raw files are written, beside the
    # export of the next ones (SQLite reads, Arrow kernels and Parquet I/O release the GIL). A range into
    # PostgreSQL is loaded in one transaction (one DELETE of the whole range, one COPY) from a third
    # thread, which sends each partition as soon as its transform is done, beside the export as well.
    transforms = {key: Future() for key in keys}  # done when the partition's clean files are (or cannot be)
    one_load = len(keys) > 1 and t.target == "postgres"
    with ThreadPoolExecutor(1, thread_name_prefix="transform") as transformer, \
            ThreadPoolExecutor(1, thread_name_prefix="load") as loader:
        def transform_later(exported: list[str]) -> None:
            for key in exported:
                if CLEAN in phases:
                    transformer.submit(transform_one, key).add_done_callback(_passed_to(transforms[key]))
                else:
                    transforms[key].set_result(None)

        loading, waited = None, 0.0
        if TARGET in phases and one_load:
            def transformed(key: str) -> None:
                nonlocal waited
                started = time.perf_counter()
                transforms[key].result()  # a failed export or transform ends the load: its transaction rolls back
                waited += time.perf_counter() - started

            def load_range() -> None:
                with clock(TARGET):
                    postgres_load.load_table(postgres.url(s), s, table, stg, partition=keys, ready=transformed,
                                             lock_token=run.lock_token, migration=run.migration_id)
                    out.rows[TARGET] = {key: stg.row_count("clean", table, key) for key in keys}

            loading = loader.submit(load_range)
        try:
            if RAW in phases:
                with clock(RAW):
                    rowids = partitions.rowid_bounds(source, s, table, windows[keys[0]][0], windows[keys[-1]][1],
                                                     ctx.facts)
                    if len(keys) == 1:
                        where = partitions.narrowed_window_filter(s, table, windows[keys[0]], rowids)
                        out.rows[RAW][keys[0]] = export_window(ctx, table, source, keys[0], where)
                        transform_later(keys)
                    else:
                        out.rows[RAW] = export_range(ctx, table, source, windows, rowids, exported=transform_later)
            else:
                transform_later(keys)
        except BaseException as e:
            for pending in transforms.values():  # the load stops at the first partition it cannot have
                if not pending.done():
                    pending.set_exception(e)
            raise
        if one_load and {CLEAN, TARGET} <= set(phases):
            # The range's source facts, read after the last transform while PostgreSQL copies and builds the
            # keys; the range checks (same process) take them from cached_source_facts. Should this fail, the
            # checks read them again and report it.
            transformer.submit(cached_source_facts, s, table, stg, partition=keys, facts=ctx.facts)
        if loading is not None:
            loading.result()
            out.seconds[TARGET] -= waited  # the transforms' time is theirs
        for key, window in windows.items():
            if CLEAN in phases:
                out.rows[CLEAN][key] = transforms[key].result()
            if TARGET in phases and not one_load:
                with clock(TARGET):
                    out.rows[TARGET][key] = load_window(s, table, stg, key, window, postgres=postgres, mongo=mongo,
                                                       run=run)
    if len(keys) > 1 and {RAW, CLEAN} <= set(phases):
        out.rows[RAW][UNPLACED] = unplaced(ctx, table, source, run.run_id)
    if TARGET in phases and t.target == "postgres":
        with postgres.connect(s) as conn:
            postgres_load.store_quarantine(conn, stg, table, run.migration_id, run.lock_token)
            conn.commit()
    return out
