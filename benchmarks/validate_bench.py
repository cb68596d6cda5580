"""Validation of a 1,000,000-row PostgreSQL table against a plain `SELECT count(*)` pass over it.

Usage: python benchmarks/validate_bench.py [--rows N] [--pg-url URL]
Without --pg-url an embedded PostgreSQL (pgserver) is started in a temporary directory.
Prints the time of each check, the source-facts time and the ratio validation / count(*).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import psycopg
import pyarrow as pa

from nova_pipeline.core.spec import parse_spec
from nova_pipeline.core.staging import Staging
from nova_pipeline.validate.postgres_checks import postgres_checks
from nova_pipeline.validate.source_facts import source_facts

SPEC = {"source": {"sqlite": "bench.sqlite"}, "tables": {"bench": {"primary_key": ["id"], "columns": {
    "id": {"type": "bigint"}, "account_id": {"type": "integer"}, "amount": {"type": "double precision"},
    "label": {"type": "text"}, "created": {"type": "timestamptz"}, "active": {"type": "boolean"}}}}}
T0_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z


def clean_table(rows: int) -> pa.Table:
    """The same rows the SQL in load() generates."""
    ids = np.arange(1, rows + 1, dtype=np.int64)
    return pa.table({
        "id": ids, "account_id": (ids % 1000).astype(np.int32), "amount": (ids % 100_000) / 100.0,
        "label": pa.array([f"item {i}" for i in range(1, rows + 1)]),
        "created": pa.array(T0_US + ids * 1_000_000, pa.timestamp("us", "UTC")), "active": ids % 3 == 0,
        "_nova_rowid": ids})


def load(conn: psycopg.Connection, rows: int) -> None:
    conn.execute("DROP TABLE IF EXISTS public.bench")
    conn.execute("""CREATE TABLE public.bench AS SELECT i::bigint AS id, mod(i, 1000)::integer AS account_id,
        mod(i, 100000)::float8 / 100 AS amount, 'item ' || i AS label,
        timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second' AS created, mod(i, 3) = 0 AS active
        FROM generate_series(1, %s) i""", (rows,))
    conn.execute("ALTER TABLE public.bench ADD PRIMARY KEY (id)")  # the loader adds constraints after the data
    conn.execute("VACUUM ANALYZE public.bench")


def best_of(n: int, fn) -> float:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--pg-url")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="validate_bench_")
    url = args.pg_url
    if url is None:
        import pgserver

        url = pgserver.get_server(f"{tmp}/pg", cleanup_mode="stop").get_uri()
    spec = parse_spec(SPEC)
    staging = Staging(f"{tmp}/staging")
    data = clean_table(args.rows)
    for kind in ("raw", "clean"):
        with staging.writer(kind, "bench", data.schema) as w:
            w.write_table(data, row_group_size=100_000)
    with psycopg.connect(url, autocommit=True) as conn:
        load(conn, args.rows)
        start = time.perf_counter()
        facts = source_facts(spec, "bench", staging)
        facts_s = time.perf_counter() - start
        count_s = best_of(3, lambda: conn.execute("SELECT count(*) FROM public.bench").fetchone())
        postgres_checks(conn, spec, "bench", facts)  # warm-up: imports, caches
        validate_s = best_of(3, lambda: postgres_checks(conn, spec, "bench", facts))
        results = postgres_checks(conn, spec, "bench", facts)
        conn.execute("UPDATE public.bench SET amount = amount + 0.01 WHERE id = 471_147")
        start = time.perf_counter()
        located = next(c for c in postgres_checks(conn, spec, "bench", facts) if c.check == "content_hash")
        locate_s = time.perf_counter() - start
    print(f"rows: {args.rows:,}")
    print(f"source_facts (Python, from staging, once per run): {facts_s:.2f} s")
    print(f"one scan (rows, row-hash sum, count/min/max/sum per column): "
          f"{results[0].metadata['aggregate_scan_seconds']:.3f} s, then per check:")
    for c in results:
        print(f"  {c.check:22} {'PASS' if c.passed else 'FAIL'} {c.metadata.get('seconds', 0):7.3f} s  {c.detail[:70]}")
    print(f"SELECT count(*): {count_s * 1000:.1f} ms (best of 3)")
    print(f"validation (all PostgreSQL checks): {validate_s:.2f} s (best of 3)")
    print(f"ratio validation / count(*): {validate_s / count_s:.1f}x")
    print(f"one changed value located in {locate_s:.2f} s: {located.detail}")


if __name__ == "__main__":
    main()
