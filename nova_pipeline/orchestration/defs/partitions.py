"""Time-partitioned loads of the tables with `partition`: assets, per-partition checks, job, schedule, sensor.

(No `from __future__ import annotations`: Dagster reads the context, config and resource annotations at runtime.)

Each partitioned table keeps the asset keys of defs/assets.build_table_assets
(raw, clean, target), so the asset graph is the same; only the assets are
time-partitioned. One run materializes one partition or, through a backfill
(BackfillPolicy.single_run), a whole range: each partition is exported from
SQLite by its exact time window (nova_pipeline.load.partitions) and transformed;
a partition is loaded by deleting and inserting its window in one transaction
and checked against its own source facts. A range into PostgreSQL is loaded
as one window (keys and indexes rebuilt after the data) and checked in one
pass; only when that pass fails are its partitions checked one by one.
"""

import json
import time
import warnings
from collections.abc import Callable, Container
from concurrent.futures import Future, InvalidStateError, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
from psycopg import sql
from pydantic import Field

from nova_pipeline.extract import export, snapshot
from nova_pipeline.core import identifiers
from nova_pipeline.load import partitions, postgres_ddl, postgres_load
from nova_pipeline.transform import transform
from nova_pipeline.orchestration.defs import assets as A
from nova_pipeline.orchestration.defs.resources import MongoResource, Nova, PostgresResource
from nova_pipeline.core.spec import Spec
from nova_pipeline.core.staging import Staging
from nova_pipeline.core import results as r
from nova_pipeline.validate.postgres_checks import (_Table, _target_aggregates, check_column_aggregates,
                                                      check_content_hash, check_row_reconciliation)
from nova_pipeline.core.results import CheckResult
from nova_pipeline.validate.source_facts import (cached_source_facts, column_facts, facts_shape, source_facts,
                                                   source_rows)

JOB = "telemetry_partitions"
UNPLACED = "unplaced"  # staging partition of the rows no window holds (unreadable timestamps): all quarantined
WINDOW_BOUNDS = "window_bounds"
RANGE_CHUNK = 7  # partitions exported by one query of a range run: each keeps a Parquet writer (and its buffers) open
POSTGRES_CHECKS = (r.ROW_RECONCILIATION, r.COLUMN_AGGREGATES, r.CONTENT_HASH, WINDOW_BOUNDS)
MONGO_CHECKS = (r.DOCUMENT_COUNT, WINDOW_BOUNDS)
DESCRIPTIONS = {
    r.ROW_RECONCILIATION: "Rows of `{t}` in this partition's window: source = loaded + quarantined, exactly.",
    r.COLUMN_AGGREGATES: "Per column of `{t}` in this window: count, NULLs, min, max and sum equal the source's.",
    r.CONTENT_HASH: "Per-bucket hashes of the window's rows of `{t}` equal the source's; differing rows named by key.",
    r.DOCUMENT_COUNT: "Documents of `{t}` in this window = source rows − quarantined rows.",
    WINDOW_BOUNDS: "Every row of `{t}` staged for this partition lies inside its time window (none outside it).",
}


class PartitionRunConfig(dg.Config):
    """Where a partition run reads the source from."""

    read_snapshot: bool = Field(False, description="Export from the migration's snapshot (source/snapshot) instead "
                                                   "of the live SQLite file; `nova-pipeline migrate` sets it.")


def partitioned_tables(spec: Spec) -> list[str]:
    """Migrated tables with `partition` and a target of their own, in spec order."""
    return [n for n, t in spec.table_items() if t.partition and A.target_key(spec, n)]


def source_path(spec: Spec) -> Path:
    """The live SQLite source of the spec."""
    return spec.resolve(spec.source.sqlite)


def _first_day(spec: Spec, table: str) -> date:
    """partition_range's first day from the live source (else the snapshot, else today)."""
    if spec.tables[table].partition.start:
        return date.fromisoformat(spec.tables[table].partition.start)
    found = [p for p in (source_path(spec), snapshot.snapshot_path(spec)) if p.exists()]
    if not found:
        return datetime.now(timezone.utc).date()
    return partitions.partition_range(spec, table, found[0])[0]


def partitions_def(spec: Spec, tables: list[str]) -> dg.TimeWindowPartitionsDefinition:
    """Daily (or monthly) partitions from the earliest first reading of `tables` up to and including today."""
    grain = spec.tables[tables[0]].partition.grain
    first = min(_first_day(spec, t) for t in tables)
    if grain == "month":
        return dg.MonthlyPartitionsDefinition(start_date=first.replace(day=1).isoformat(), end_offset=1)
    return dg.DailyPartitionsDefinition(start_date=first.isoformat(), end_offset=1)


def _ensure_table(postgres: PostgresResource, spec: Spec, table: str) -> None:
    """Create the partitioned parent when missing; an existing one is never re-created by a partition run."""
    with postgres.connect(spec) as conn:
        exists = conn.execute("SELECT to_regclass(%s)", (sql.Identifier(*identifiers.pg_table(spec, table))
                                                          .as_string(conn),)).fetchone()[0]
        if exists is None:
            postgres_ddl.create_tables(conn, spec, [table])
            conn.commit()


def _export(spec: Spec, table: str, stg: Staging, source: Path, key: str, where: tuple[str, tuple]) -> int:
    return export.export_table(str(source), table, list(spec.tables[table].columns), stg, batch_rows=spec.batch_rows,
                               partition=key, where=where).rows


def _export_range(spec: Spec, table: str, stg: Staging, source: Path, windows: dict[str, tuple[datetime, datetime]],
                  rowids: tuple[str, dict[int, tuple[int, int]]] | None,
                  exported: Callable[[list[str]], None]) -> dict[str, int]:
    """Export many partitions with one query per RANGE_CHUNK of them (rowid spans keep each query to its days),
    each row into its day's partition; `exported` is called with each chunk's keys once their files are written."""
    columns = list(spec.tables[table].columns)
    classes = export.table_storage_classes(str(source), table, columns)  # one scan, not one per window
    keys, rows = list(windows), {}
    for i in range(0, len(keys), RANGE_CHUNK):
        chunk = keys[i:i + RANGE_CHUNK]
        days = {d: key for key in chunk for d in _days(windows[key])}
        # Rows are routed by their day, computed once per row; other days' rows are skipped.
        where = None if rowids is None else (f"{rowids[0]} BETWEEN ? AND ?", _rowid_span(rowids, days))
        day_sql = (partitions.rowid_day_expression(source, spec, table, days)
                   or partitions.day_expression(spec, table))
        rows |= export.export_days(str(source), table, columns, stg, where=where, day_sql=day_sql, keys=days,
                                   batch_rows=spec.batch_rows, classes=classes)
        exported(chunk)
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


def _transform(spec: Spec, table: str, stg: Staging, key: str, run_id: str) -> int:
    return transform.transform_table(spec, table, stg, partition=key, run_id=run_id).rows_out


def _days(window: tuple[datetime, datetime]) -> range:
    return range(*(partitions.day_number(w.date()) for w in window))


def _rowid_span(rowids: tuple[str, dict[int, tuple[int, int]]], days: Container[int]) -> tuple[int, int]:
    """(first, last) rowid of the rows of `days` (an empty range when they hold none)."""
    spans = [span for d, span in rowids[1].items() if d in days]
    return (min(a for a, _ in spans), max(b for _, b in spans)) if spans else (1, 0)


def _where(spec: Spec, table: str, window: tuple[datetime, datetime],
           rowids: tuple[str, dict[int, tuple[int, int]]] | None) -> tuple[str, tuple]:
    """The window's filter, narrowed to the rowid range its days span (empty when it holds no rows)."""
    if rowids is None:
        return partitions.window_filter(spec, table, *window)
    return partitions.window_filter(spec, table, *window, rowids=(rowids[0], *_rowid_span(rowids, _days(window))))


def _unplaced(spec: Spec, table: str, stg: Staging, source: Path, run_id: str) -> int:
    """Export and transform the rows without a window; the transform must quarantine every one of them."""
    if partitions.day_spans(source, spec, table)[1].get(None, (0,))[0] == 0:
        for kind in ("raw", "clean", "quarantine"):
            stg.clear(kind, table, UNPLACED)
        return 0
    rows = _export(spec, table, stg, source, UNPLACED, partitions.unplaced_filter(spec, table))
    res = transform.transform_table(partitions.with_partition_column_required(spec, table), table, stg,
                                    partition=UNPLACED, run_id=run_id)
    if res.rows_out:
        raise partitions.PartitionError(f"table {table!r}: {res.rows_out} row(s) outside every window were readable "
                                        "by the casts; the window filter and casts.py disagree")
    return rows


def build_partitioned_assets(spec: Spec, table: str, pdef: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """Export, transform and load one partitioned table, one time window per partition key."""
    t = spec.tables[table]
    raw, clean, tkey = A.raw_key(table), A.clean_key(table), A.target_key(spec, table)
    version, about = A.code_version(t), f" {t.description}" if t.description else ""
    common = dict(code_version=version, owners=t.owners, tags=dict(t.tags), partitions_def=pdef)
    part = t.partition
    specs = [
        dg.AssetSpec(raw, deps=[A.SNAPSHOT], group_name="staging", kinds={"sqlite", "parquet"}, **common,
                     description=f"Rows of `{table}` whose `{part.column}` falls in the partition's UTC window, "
                                 f"exported to zstd Parquet as stored.{about}"),
        dg.AssetSpec(clean, deps=[raw], group_name="staging", kinds={"parquet"}, **common,
                     description=f"The window's rows of `{table}` cast to their target types; rows that cannot be "
                                 "cast are quarantined with column, raw value and reason."),
        dg.AssetSpec(tkey, deps=A._target_deps(spec, table, t), kinds={"postgres" if t.target == "postgres" else "mongodb"},
                     group_name=t.target if t.target == "postgres" else "mongodb", **common,
                     description=f"`{table}` by {part.grain} of `{part.column}`: each partition deletes and "
                                 f"re-inserts its window in one transaction, so re-runs and backfills never "
                                 f"duplicate.{about}"),
    ]

    @dg.multi_asset(name=f"partitions_{A.key_part(table)}", specs=specs, can_subset=True,
                    backfill_policy=dg.BackfillPolicy.single_run(),
                    description=f"Partitioned export, transform and load of `{table}`.")
    def load_partitions(context: dg.AssetExecutionContext, config: PartitionRunConfig, nova: Nova,
                        postgres: PostgresResource, mongo: MongoResource):
        s, selected, keys = nova.spec, context.selected_asset_keys, context.partition_keys
        stg = A.staging_of(s)
        source = snapshot.snapshot_path(s) if config.read_snapshot else source_path(s)
        rows: dict = {k: {} for k in (raw, clean, tkey)}
        seconds = dict.fromkeys((raw, clean, tkey), 0.0)
        if tkey in selected and t.target == "postgres":
            _ensure_table(postgres, s, table)
        windows = {key: postgres_load.partition_window(s, table, key) for key in keys}

        @contextmanager
        def clock(asset_key: dg.AssetKey):
            started = time.perf_counter()
            yield
            seconds[asset_key] += time.perf_counter() - started

        def transform_one(key: str) -> int:
            with clock(clean):
                return _transform(s, table, stg, key, context.run_id)

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
                    if clean in selected:
                        transformer.submit(transform_one, key).add_done_callback(_passed_to(transforms[key]))
                    else:
                        transforms[key].set_result(None)

            loading = None
            if tkey in selected and one_load:
                def load_range() -> None:
                    with clock(tkey):
                        postgres_load.load_table(postgres.url(s), s, table, stg, partition=keys, ready=transformed,
                                                 lock_token=A.lock_token(context), migration=A.migration_id(context))
                        rows[tkey] = {key: stg.row_count("clean", table, key) for key in keys}

                waited = 0.0

                def transformed(key: str) -> None:
                    nonlocal waited
                    started = time.perf_counter()
                    transforms[key].result()  # a failed export or transform ends the load: its transaction rolls back
                    waited += time.perf_counter() - started

                loading = loader.submit(load_range)
            try:
                if raw in selected:
                    with clock(raw):
                        rowids = partitions.rowid_bounds(source, s, table, windows[keys[0]][0], windows[keys[-1]][1])
                        if len(keys) == 1:
                            where = _where(s, table, windows[keys[0]], rowids)
                            rows[raw][keys[0]] = _export(s, table, stg, source, keys[0], where)
                            transform_later(keys)
                        else:
                            rows[raw] = _export_range(s, table, stg, source, windows, rowids, exported=transform_later)
                else:
                    transform_later(keys)
            except BaseException as e:
                for pending in transforms.values():  # the load stops at the first partition it cannot have
                    if not pending.done():
                        pending.set_exception(e)
                raise
            if one_load and {clean, tkey} <= selected:
                # The range's source facts, read after the last transform while PostgreSQL copies and builds the
                # keys; the range checks (same process) take them from cached_source_facts. Should this fail, the
                # checks read them again and report it.
                transformer.submit(cached_source_facts, s, table, stg, partition=keys)
            if loading is not None:
                loading.result()
                seconds[tkey] -= waited  # the transforms' time is theirs
            for key, window in windows.items():
                if clean in selected:
                    rows[clean][key] = transforms[key].result()
                if tkey in selected and not one_load:
                    with clock(tkey):
                        rows[tkey][key] = _load_window(s, table, stg, key, window, postgres, mongo, context)
        if len(keys) > 1 and {raw, clean} <= selected:
            rows[raw][UNPLACED] = _unplaced(s, table, stg, source, context.run_id)
        if tkey in selected and t.target == "postgres":
            with postgres.connect(s) as conn:
                postgres_load.store_quarantine(conn, stg, table, A.migration_id(context), A.lock_token(context))
                conn.commit()
        for key in (raw, clean, tkey):
            if key in selected:
                n = sum(rows[key].values())
                yield dg.MaterializeResult(asset_key=key, metadata={
                    "dagster/row_count": n, "rows_per_partition": dg.MetadataValue.json(rows[key]),
                    "seconds": round(seconds[key], 3), "rows_per_s": A._rate(n, seconds[key]),
                    "source": "snapshot" if config.read_snapshot else "live"})

    return load_partitions


def _load_window(s: Spec, table: str, stg: Staging, key: str, window: tuple[datetime, datetime],
                 postgres: PostgresResource, mongo: MongoResource, context: dg.AssetExecutionContext) -> int:
    if s.tables[table].target == "postgres":
        return postgres_load.load_table(postgres.url(s), s, table, stg, partition=key, window=window,
                                        lock_token=A.lock_token(context), migration=A.migration_id(context)).rows
    from nova_pipeline.load import mongo_load

    return mongo_load.load_collection(mongo.database(s), s, table, stg, partition=key, window=window).documents


def _partition_column(spec: Spec, table: str) -> str:
    return identifiers.target_column(spec.tables[table], spec.tables[table].partition.column)


def _window_bounds(spec: Spec, table: str, c: dict, key: str) -> CheckResult:
    """The clean rows staged for the partition all lie inside its window: `c` holds their count, min and max (µs)."""
    lo, hi = (int((w - datetime(1970, 1, 1, tzinfo=timezone.utc)) / timedelta(microseconds=1))
              for w in postgres_load.partition_window(spec, table, key))
    ok = c["count"] == 0 or (lo <= c["min"] and c["max"] < hi)
    detail = (f"{c['count']} row(s) inside [{key}, next partition)" if ok else
              f"{WINDOW_BOUNDS}: staged rows span {c['min']}..{c['max']} µs, outside the window [{lo}, {hi})")
    return CheckResult(table, WINDOW_BOUNDS, ok, detail, metadata={"window_us": [lo, hi]})


def _postgres_window_checks(conn, spec: Spec, table: str, facts: dict, agg: dict | None = None) -> list[CheckResult]:
    """Reconciliation, aggregates and content hash of the window(s) of `facts` (one partition or a range),
    from the target's aggregates `agg` (scanned here when not given)."""
    t = _Table(conn, spec, table, facts)
    agg = agg if agg is not None else _target_aggregates(t)
    return [check_row_reconciliation(t, agg), check_column_aggregates(t, agg), check_content_hash(t, agg)]


def _postgres_range_checks(conn, spec: Spec, table: str, stg: Staging,
                           keys: list[str]) -> dict[str, list[CheckResult]] | None:
    """Every partition's checks from one pass over the whole range, or None when the range fails somewhere.

    Rows fall in partitions by their own timestamp, so when the range's rows equal the source's (counts,
    aggregates, row hashes), so do every partition's; a failing range is checked again partition by partition.
    """
    # PostgreSQL scans the range while the source facts are read from staging.
    with ThreadPoolExecutor(1, thread_name_prefix="target-scan") as pool:
        scan = pool.submit(_target_aggregates, _Table(conn, spec, table, facts_shape(spec, table, stg, partition=keys)))
        facts = cached_source_facts(spec, table, stg, partition=keys)
        agg = scan.result()
    results = _postgres_window_checks(conn, spec, table, facts, agg)
    if not all(res.passed for res in results):
        return None
    col = _partition_column(spec, table)
    span = f" (checked over the range {keys[0]}..{keys[-1]})"
    return {key: [CheckResult(res.table, res.check, True, res.detail + span, metadata=res.metadata) for res in results]
            + [_window_bounds(spec, table, column_facts(spec, table, stg, col, key), key)] for key in keys}


def _mongo_window_checks(db, spec: Spec, table: str, facts: dict, key: str) -> list[CheckResult]:
    from nova_pipeline.load.mongo_documents import document_field

    ts = spec.tables[table]
    lo, hi = postgres_load.partition_window(spec, table, key)
    found = db[identifiers.mongo_collection(spec, table)].count_documents(
        {document_field(ts, ts.partition.column): {"$gte": lo, "$lt": hi}})
    expected = source_rows(facts) - facts["quarantined_rows"]
    count = CheckResult(table, r.DOCUMENT_COUNT, found == expected,
                        f"{found} document(s) in the window, source {source_rows(facts)} − quarantined "
                        f"{facts['quarantined_rows']} = {expected}", metadata={"found": found, "expected": expected})
    return [count, _window_bounds(spec, table, facts["columns"][_partition_column(spec, table)], key)]


def _partition_checks(spec: Spec, table: str, stg: Staging, key: str, postgres: PostgresResource,
                      mongo: MongoResource) -> list[CheckResult]:
    """The checks of one partition against its own source facts."""
    facts = source_facts(spec, table, stg, partition=key)
    if spec.tables[table].target != "postgres":
        return _mongo_window_checks(mongo.database(spec), spec, table, facts, key)
    with postgres.connect(spec, autocommit=True) as conn:
        return _postgres_window_checks(conn, spec, table, facts) + [
            _window_bounds(spec, table, facts["columns"][_partition_column(spec, table)], key)]


def _check_result(asset_key: dg.AssetKey, res: CheckResult, partition: str | None = None):
    meta = {"detail": res.detail, "failing_keys": dg.MetadataValue.json(json.loads(json.dumps(res.failing_keys, default=str)))}
    severity = dg.AssetCheckSeverity.ERROR if res.severity == "ERROR" else dg.AssetCheckSeverity.WARN
    if partition is None:
        return dg.AssetCheckResult(asset_key=asset_key, check_name=res.check, passed=res.passed,
                                   description=res.detail, severity=severity, metadata=meta)
    return dg.AssetCheckEvaluation(asset_key=asset_key, check_name=res.check, passed=res.passed, partition=partition,
                                   description=res.detail, severity=severity, metadata=meta)


def build_partitioned_checks(spec: Spec, table: str, pdef: dg.PartitionsDefinition) -> dg.AssetChecksDefinition:
    """Per-partition checks of one table's window: counts, aggregates and hashes source vs target, window bounds."""
    t = spec.tables[table]
    tkey = A.target_key(spec, table)
    names = POSTGRES_CHECKS if t.target == "postgres" else MONGO_CHECKS
    with warnings.catch_warnings():  # partitioned checks are a preview feature of Dagster 1.13; we rely on them
        warnings.simplefilter("ignore", dg.PreviewWarning)
        specs = [dg.AssetCheckSpec(n, asset=tkey, partitions_def=pdef, blocking=n in r.BLOCKING,
                                   description=DESCRIPTIONS[n].format(t=table)) for n in names]

    @dg.multi_asset_check(specs=specs, name=f"validate_partitions_{A.key_part(table)}",
                          description=f"Validation of each loaded window of `{table}` in {t.target}.")
    def validate_partitions(context: dg.AssetCheckExecutionContext, nova: Nova, postgres: PostgresResource,
                            mongo: MongoResource):
        s, keys = nova.spec, context.partition_keys
        stg = A.staging_of(s)
        per_key = None
        if len(keys) > 1 and t.target == "postgres":
            with postgres.connect(s, autocommit=True) as conn:
                per_key = _postgres_range_checks(conn, s, table, stg, keys)
        if per_key is None:
            per_key = {key: _partition_checks(s, table, stg, key, postgres, mongo) for key in keys}
        if len(keys) == 1:
            for res in per_key[keys[0]]:
                yield _check_result(tkey, res)
            return
        # A range run has one check step: each partition's evaluation is logged under its key, and the
        # step's own result per check summarises the range (it fails when any partition failed).
        for key, results in per_key.items():
            for res in results:
                context.op_execution_context.log_event(_check_result(tkey, res, key))
        for name in names:
            failed = [k for k, results in per_key.items() for res in results if res.check == name and not res.passed]
            detail = (f"{len(keys)} partition(s) {keys[0]}..{keys[-1]} passed" if not failed
                      else f"{name}: failed in {len(failed)} partition(s): {', '.join(failed[:10])}")
            yield _check_result(tkey, CheckResult(table, name, not failed, detail, failed))

    return validate_partitions


def build_partition_schedule(job: dg.JobDefinition, grain: str) -> dg.ScheduleDefinition:
    """Every day at 00:15 UTC: yesterday's partition (for monthly grain, the month holding yesterday).

    Not build_schedule_from_partitioned_job: with end_offset=1 (today's partition exists) it targets today.
    """

    @dg.schedule(name=f"{job.name}_daily", job=job, cron_schedule="15 0 * * *", execution_timezone="UTC",
                 default_status=dg.DefaultScheduleStatus.STOPPED,
                 description="Materializes yesterday's partition of every partitioned table once the day is over.")
    def daily(context: dg.ScheduleEvaluationContext):
        day = context.scheduled_execution_time.astimezone(timezone.utc).date() - timedelta(days=1)
        key = (day if grain == "day" else day.replace(day=1)).isoformat()
        return dg.RunRequest(run_key=f"scheduled:{key}:{day}", partition_key=key)

    return daily


def build_partition_sensor(spec: Spec, table: str, job: dg.JobDefinition,
                           pdef: dg.TimeWindowPartitionsDefinition) -> dg.SensorDefinition:
    """Sensor noticing new days and late rows in past days of `table` in the live source (per-day counts + max rowid)."""
    source = source_path(spec)
    keys = [A.raw_key(table), A.clean_key(table), A.target_key(spec, table)]

    @dg.sensor(name=f"{A.key_part(table)}_new_readings", job=job, minimum_interval_seconds=300,
               default_status=dg.DefaultSensorStatus.STOPPED,
               description=f"Requests a `{job.name}` run for each partition of `{table}` whose rows changed in "
                           f"{source} (new day, late-arriving or deleted rows), one run per partition and change.")
    def new_readings(context: dg.SensorEvaluationContext):
        if not source.exists():
            return dg.SkipReason(f"source missing: {source}")
        seen = {str(d): list(v) for d, v in partitions.day_fingerprints(source, spec, table).items() if d is not None}
        before = json.loads(context.cursor) if context.cursor else None
        context.update_cursor(json.dumps(seen, sort_keys=True))
        if before is None:
            return dg.SkipReason("first look: per-day fingerprints recorded")
        changed = sorted(int(d) for d in set(seen) | set(before) if seen.get(d) != before.get(d))
        by_key: dict[str, list] = {}
        for d in changed:
            by_key.setdefault(partitions.partition_key(spec, table, partitions.day_of(d)), []).append(
                [d, seen.get(str(d))])
        valid = set(pdef.get_partition_keys())
        requests = [dg.RunRequest(run_key=f"{A.key_part(table)}:{k}:{json.dumps(v)}", partition_key=k, asset_selection=keys,
                                  tags={"nova/trigger": "new_readings"})
                    for k, v in by_key.items() if k in valid]
        return requests or dg.SkipReason("no partition changed" if not by_key else
                                         f"changes only outside the partitions: {sorted(by_key)[:5]}")

    return new_readings


def jobs_by_name(spec: Spec) -> dict[str, list[str]]:
    """Partition job name → its tables: `telemetry_partitions` for the first grain used, `telemetry_partitions_<grain>` after."""
    by_grain: dict[str, list[str]] = {}
    for name in partitioned_tables(spec):
        by_grain.setdefault(spec.tables[name].partition.grain, []).append(name)
    return {(JOB if i == 0 else f"{JOB}_{grain}"): tables for i, (grain, tables) in enumerate(by_grain.items())}


def job_of(spec: Spec, table: str) -> str:
    """The partition job that materializes `table` (PartitionError when the table is not partitioned)."""
    found = [job for job, tables in jobs_by_name(spec).items() if table in tables]
    if not found:
        raise partitions.PartitionError(f"table {table!r} is not a partitioned table of the spec "
                                        f"(partitioned: {', '.join(partitioned_tables(spec)) or 'none'})")
    return found[0]


def build_partitioned_defs(spec: Spec) -> dict[str, list]:
    """Assets, checks, jobs, schedules and sensors of the spec's partitioned tables (empty lists when none)."""
    out: dict[str, list] = {"assets": [], "checks": [], "jobs": [], "schedules": [], "sensors": []}
    for name, tables in jobs_by_name(spec).items():
        grain = spec.tables[tables[0]].partition.grain
        pdef = partitions_def(spec, tables)
        assets = [build_partitioned_assets(spec, t, pdef) for t in tables]
        job = dg.define_asset_job(name, selection=dg.AssetSelection.assets(*assets),
                                  partitions_def=pdef,
                                  description=f"Load {grain} partitions of {', '.join(tables)}: export the window, "
                                              "transform, replace it in the target, check it.")
        out["assets"] += assets
        out["checks"] += [build_partitioned_checks(spec, t, pdef) for t in tables]
        out["jobs"].append(job)
        out["schedules"].append(build_partition_schedule(job, grain))
        out["sensors"] += [build_partition_sensor(spec, t, job, pdef) for t in tables]
    return out
