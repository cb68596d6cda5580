"""Phase 1 in plain Python: the consistent snapshot of the source, and its profile (row counts, storage classes,
days of the partitioned tables), kept in the run context for every later step."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from typing import Any

from nova_pipeline.core.run_context import RunContext
from nova_pipeline.extract import export, introspect, snapshot
from nova_pipeline.load import partitions
from nova_pipeline.pipeline.context import Context
from nova_pipeline.validate import expectations, facts_worker

PROFILE_PART_ROWS = 500_000  # rows per part when a table's storage classes are counted in rowid ranges


def take_snapshot(ctx: RunContext, steps_here: bool = False) -> snapshot.Snapshot:
    """Copy the live source consistently (or take the copy begun early in this process), hash and check it, and
    publish it beside an object-store staging area for steps elsewhere. `steps_here`: the steps after it run
    in this process (an in_process run), which then starts the source facts' worker for its PostgreSQL tables."""
    s = ctx.spec
    expectations.preload(s)  # while SQLite copies and checks the file in C, with the GIL free
    if steps_here and s.table_items("postgres"):
        facts_worker.start()
    snap = snapshot.take_snapshot(s.resolve(s.source.sqlite), ctx.snapshot_path, ctx.pending_snapshots)
    ctx.publish_snapshot()
    return snap


def profile_source(ctx: Context) -> dict[str, Any]:
    """Rows per table, per column storage-class counts, and the days of each partitioned table, of the snapshot;
    saved in the context (and the storage classes for the export, which then skips its typeof scan)."""
    s, source = ctx.spec, ctx.local_snapshot()
    with closing(snapshot.connect_readonly(source)) as conn:
        tables = {t.name: t for t in introspect.read_schema(conn).tables}
        counts = {name: conn.execute(f"SELECT count(*) FROM {export.quote(name)}").fetchone()[0]
                  for name, _ in s.table_items()}
        # A large table's storage classes are counted in rowid ranges, side by side.
        parts = {n: introspect.rowid_ranges(conn, tables[n], counts[n], PROFILE_PART_ROWS) for n in counts}

    def count_classes(name: str, rowids: tuple[int, int] | None) -> dict:
        t = tables[name]
        with closing(snapshot.connect_readonly(source)) as conn:
            return introspect.storage_counts(conn, name, [c.name for c in t.columns], rowid_alias=t.rowid_alias,
                                             rowids=rowids)

    def days_of(name: str) -> dict:
        spans = partitions.day_spans(source, s, name, ctx.facts)[1]  # stored: the range run reads it again
        days = sorted(d for d in spans if d is not None)
        return {"first_day": str(partitions.day_of(days[0])) if days else None,
                "last_day": str(partitions.day_of(days[-1])) if days else None, "days": len(days),
                "rows_without_day": spans.get(None, (0,))[0]}

    # SQLite releases the GIL while it scans: one connection per scan, scans side by side, largest first.
    scans = [(counts[n] / len(parts[n]), "classes", n, part) for n in counts for part in parts[n]]
    scans += [(counts[n], "days", n, None) for n in counts if s.tables[n].partition]
    with ThreadPoolExecutor(os.cpu_count() or 2) as pool:
        done = [(kind, n, pool.submit(count_classes, n, part) if kind == "classes" else pool.submit(days_of, n))
                for _, kind, n, part in sorted(scans, key=lambda scan: scan[0], reverse=True)]
    profiles = {n: introspect.sum_storage_counts([r.result() for kind, m, r in done if kind == "classes" and m == n])
                for n in counts}
    for n, per_column in profiles.items():  # the export's typeof scan, done here
        export.remember_storage_classes(source, n, {
            c: {k for k, rows in per_class.items() if rows and k != "null"} for c, per_class in per_column.items()},
            ctx.facts)
    profile = {"rows_per_table": counts, "storage_classes": profiles,
               "partition_days": {n: r.result() for kind, n, r in done if kind == "days"}}
    ctx.save_profile(profile)
    return profile
