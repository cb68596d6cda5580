"""The migration report's counts, read where they are true: source rows in the snapshot, quarantined rows in
staging, loaded rows in the targets (report/report.py builds and writes it)."""

from __future__ import annotations

import sqlite3
from contextlib import ExitStack
from typing import Any

from nova_pipeline.core import connections
from nova_pipeline.extract.snapshot import quote
from nova_pipeline.pipeline.context import Context
from nova_pipeline.report import report


def snapshot_row_counts(ctx: Context) -> dict[str, int]:
    """Source rows per table, counted in the snapshot (the copy every export read); empty without one."""
    path = ctx.taken_snapshot()
    if path is None:
        return {}
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return {name: conn.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()[0]
                for name, _ in ctx.spec.table_items()}


def count_report(ctx: Context, *, postgres_url: str | None, mongo_db, run_id: str, started_at: str,
                 seconds: dict[str, float], errors: dict[str, str], checks: list[dict[str, Any]],
                 notes: list[str]) -> report.MigrationReport:
    """The report of every table of the spec, counted now (status "succeeded" until a caller finds otherwise)."""
    with ExitStack() as stack:
        conn = stack.enter_context(connections.connect_postgres(postgres_url)) if postgres_url else None
        return report.build_report(ctx.spec, staging=ctx.staging, source_rows=snapshot_row_counts(ctx),
                                   pg_conn=conn, mongo_db=mongo_db, status="succeeded", run_id=run_id,
                                   started_at=started_at, seconds=seconds, errors=errors, checks=checks, notes=notes)
