"""Checks of a partition's (or a range's) window in its target against the window's own source facts."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from nova_pipeline.core import identifiers
from nova_pipeline.core import results as r
from nova_pipeline.core.results import CheckResult
from nova_pipeline.core.scan_cache import FactsStore
from nova_pipeline.core.spec import Spec
from nova_pipeline.core.staging import Staging
from nova_pipeline.load import postgres_load
from nova_pipeline.pipeline.context import MongoTarget, PostgresTarget
from nova_pipeline.validate.postgres_checks import (TargetTable, check_column_aggregates, check_content_hash,
                                                    check_row_reconciliation, target_aggregates)
from nova_pipeline.validate.source_facts import (cached_source_facts, column_facts, facts_shape, source_facts,
                                                 source_rows)

WINDOW_BOUNDS = "window_bounds"
POSTGRES_CHECKS = (r.ROW_RECONCILIATION, r.COLUMN_AGGREGATES, r.CONTENT_HASH, WINDOW_BOUNDS)
MONGO_CHECKS = (r.DOCUMENT_COUNT, WINDOW_BOUNDS)


def partition_column(spec: Spec, table: str) -> str:
    """The target name of the table's partition column."""
    return identifiers.target_column(spec.tables[table], spec.tables[table].partition.column)


def window_bounds(spec: Spec, table: str, c: dict, key: str) -> CheckResult:
    """The clean rows staged for the partition all lie inside its window: `c` holds their count, min and max (µs)."""
    lo, hi = (int((w - datetime(1970, 1, 1, tzinfo=timezone.utc)) / timedelta(microseconds=1))
              for w in postgres_load.partition_window(spec, table, key))
    ok = c["count"] == 0 or (lo <= c["min"] and c["max"] < hi)
    detail = (f"{c['count']} row(s) inside [{key}, next partition)" if ok else
              f"{WINDOW_BOUNDS}: staged rows span {c['min']}..{c['max']} µs, outside the window [{lo}, {hi})")
    return CheckResult(table, WINDOW_BOUNDS, ok, detail, metadata={"window_us": [lo, hi]})


def postgres_window_checks(conn, spec: Spec, table: str, facts: dict, agg: dict | None = None) -> list[CheckResult]:
    """Reconciliation, aggregates and content hash of the window(s) of `facts` (one partition or a range),
    from the target's aggregates `agg` (scanned here when not given)."""
    t = TargetTable(conn, spec, table, facts)
    agg = agg if agg is not None else target_aggregates(t)
    return [check_row_reconciliation(t, agg), check_column_aggregates(t, agg), check_content_hash(t, agg)]


def postgres_range_checks(conn, spec: Spec, table: str, stg: Staging, keys: list[str],
                          facts: FactsStore | None = None) -> dict[str, list[CheckResult]] | None:
    """Every partition's checks from one pass over the whole range, or None when the range fails somewhere.

    Rows fall in partitions by their own timestamp, so when the range's rows equal the source's (counts,
    aggregates, row hashes), so do every partition's; a failing range is checked again partition by partition.
    """
    # PostgreSQL scans the range while the source facts are read from staging.
    with ThreadPoolExecutor(1, thread_name_prefix="target-scan") as pool:
        scan = pool.submit(target_aggregates, TargetTable(conn, spec, table, facts_shape(spec, table, stg, partition=keys)))
        source = cached_source_facts(spec, table, stg, partition=keys, facts=facts)
        agg = scan.result()
    results = postgres_window_checks(conn, spec, table, source, agg)
    if not all(res.passed for res in results):
        return None
    col = partition_column(spec, table)
    span = f" (checked over the range {keys[0]}..{keys[-1]})"
    return {key: [CheckResult(res.table, res.check, True, res.detail + span, metadata=res.metadata) for res in results]
            + [window_bounds(spec, table, column_facts(spec, table, stg, col, key), key)] for key in keys}


def mongo_window_checks(db, spec: Spec, table: str, facts: dict, key: str) -> list[CheckResult]:
    """Documents in the partition's window = its source rows − quarantined rows, and its window bounds."""
    from nova_pipeline.load.mongo_documents import document_field

    ts = spec.tables[table]
    lo, hi = postgres_load.partition_window(spec, table, key)
    found = db[identifiers.mongo_collection(spec, table)].count_documents(
        {document_field(ts, ts.partition.column): {"$gte": lo, "$lt": hi}})
    expected = source_rows(facts) - facts["quarantined_rows"]
    count = CheckResult(table, r.DOCUMENT_COUNT, found == expected,
                        f"{found} document(s) in the window, source {source_rows(facts)} − quarantined "
                        f"{facts['quarantined_rows']} = {expected}", metadata={"found": found, "expected": expected})
    return [count, window_bounds(spec, table, facts["columns"][partition_column(spec, table)], key)]


def partition_checks(spec: Spec, table: str, stg: Staging, key: str, postgres: PostgresTarget,
                     mongo: MongoTarget) -> list[CheckResult]:
    """The checks of one partition against its own source facts."""
    facts = source_facts(spec, table, stg, partition=key)
    if spec.tables[table].target != "postgres":
        return mongo_window_checks(mongo.database(spec), spec, table, facts, key)
    with postgres.connect(spec, autocommit=True) as conn:
        return postgres_window_checks(conn, spec, table, facts) + [
            window_bounds(spec, table, facts["columns"][partition_column(spec, table)], key)]


def range_checks(spec: Spec, table: str, stg: Staging, keys: list[str], postgres: PostgresTarget,
                 mongo: MongoTarget, facts: FactsStore | None = None) -> dict[str, list[CheckResult]]:
    """Every partition's checks of a run over `keys`: one pass over a PostgreSQL range, partition by partition
    when that pass fails (or for MongoDB)."""
    per_key = None
    if len(keys) > 1 and spec.tables[table].target == "postgres":
        with postgres.connect(spec, autocommit=True) as conn:
            per_key = postgres_range_checks(conn, spec, table, stg, keys, facts)
    if per_key is None:
        per_key = {key: partition_checks(spec, table, stg, key, postgres, mongo) for key in keys}
    return per_key
