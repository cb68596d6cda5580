"""Cost of `staging_encryption: true` on staging alone: write then read the Nova sample's tables as staged
Parquet, plain and encrypted, alternating (A/B per round), medians of the rounds.

    python benchmarks/staging_encryption_bench.py [--scale 20] [--rounds 3]

Prints wall and CPU seconds of writing (Staging.write_parts) and of reading (Staging.read_batches) every
table, the bytes staged, and the load average before each round (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

SPEC = Path(__file__).resolve().parents[1] / "data" / "nova.spec.yaml"


def tables_of(db: Path, work: Path) -> dict[str, pa.Table]:
    """Every table of the Nova spec as raw staging holds it (exported once, then kept in memory)."""
    from nova_pipeline.core.spec import load_spec
    from nova_pipeline.core.staging import Staging
    from nova_pipeline.extract.export import export_table

    spec, staging = load_spec(SPEC), Staging(str(work / "export"))
    out = {}
    for name, t in spec.table_items():
        export_table(str(db), name, list(t.columns), staging)
        out[name] = pa.Table.from_batches(list(staging.read_batches("raw", name)), staging.schema("raw", name))
    return out


def one_pass(root: Path, tables: dict[str, pa.Table], encrypted: bool) -> dict[str, float]:
    from nova_pipeline.core.staging import Staging

    shutil.rmtree(root, ignore_errors=True)
    staging = Staging(str(root), encrypted=encrypted)
    w0, c0 = time.perf_counter(), time.process_time()
    for name, t in tables.items():
        staging.write_parts("clean", name, t.schema, t.to_batches(max_chunksize=100_000))
    w1, c1 = time.perf_counter(), time.process_time()
    rows = sum(b.num_rows for name in tables for b in staging.read_batches("clean", name))
    w2, c2 = time.perf_counter(), time.process_time()
    size = sum(p.stat().st_size for p in root.rglob("*.parquet"))
    return {"write_wall": w1 - w0, "write_cpu": c1 - c0, "read_wall": w2 - w1, "read_cpu": c2 - c1,
            "rows": rows, "bytes": size}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=20.0, help="Nova sample scale (1 ≈ 43 k rows)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    os.environ.setdefault("NOVA_STAGING_KEY", secrets.token_hex(32))
    from nova_pipeline.demo.sample import generate

    work = Path(tempfile.mkdtemp(prefix="nova-enc-bench-"))
    try:
        generate(work / "nova.sqlite", scale=args.scale)
        tables = tables_of(work / "nova.sqlite", work)
        results = {False: [], True: []}
        loads = []
        for _ in range(args.rounds):
            for encrypted in (False, True):
                loads.append(os.getloadavg()[0])
                results[encrypted].append(one_pass(work / "staging", tables, encrypted))
        rows = results[False][0]["rows"]
        print(f"{rows:,} rows in {len(tables)} tables; {args.rounds} rounds, plain/encrypted alternating; "
              f"load average {min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} CPUs\n")
        print("| median of rounds | plain | encrypted | encrypted / plain |\n|---|---:|---:|---:|")
        for key in ("write_wall", "write_cpu", "read_wall", "read_cpu", "bytes"):
            plain = statistics.median(r[key] for r in results[False])
            enc = statistics.median(r[key] for r in results[True])
            fmt = (lambda v: f"{v / 2**20:.1f} MiB") if key == "bytes" else (lambda v: f"{v:.2f} s")
            print(f"| {key.replace('_', ' ')} | {fmt(plain)} | {fmt(enc)} | {enc / plain:.2f} |")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
