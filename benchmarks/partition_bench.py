"""Benchmark: 30 days of drone telemetry (≥ 3 M rows) loaded partition by partition and as one backfill.

    python benchmarks/partition_bench.py [--rows 3000000] [--postgres-url URL]

Generates the Nova sample's drone_telemetry (nova_pipeline.demo.sample: 90 % ISO
text, 10 % epoch milliseconds, spread over 35 days) into a fresh SQLite file,
then runs the `telemetry_partitions` job in process, each mode in its own
subprocess (so peak RSS is that mode's alone) against its own empty database:

* per-partition: 30 runs, one per day (what the schedule and sensor do);
* range: one single-run backfill over the same 30 days.

Prints rows/s end to end (export + transform + load + checks + Dagster),
seconds per phase from the asset metadata, and the peak RSS of the process.
Without --postgres-url an embedded PostgreSQL (pgserver) is started in a
temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import date, timedelta
from pathlib import Path

import yaml

DAYS = 30
FIRST = date(2024, 1, 1)
SAMPLE_SPEC = Path(__file__).resolve().parents[1] / "data" / "nova.spec.yaml"


def generate(path: Path, rows: int) -> None:
    """drone_telemetry of the Nova sample with `rows` rows over its 35 days (so 30 days hold ≥ rows·30/35)."""
    import adbc_driver_sqlite.dbapi as adbc_sqlite
    import numpy as np
    import pyarrow as pa

    from nova_pipeline.demo import sample

    ddl = next(s for s in sample._statements(sample.SCHEMA) if s.startswith("CREATE TABLE drone_telemetry"))
    counts = {**sample.rows_for(1), "drone_telemetry": rows}
    with adbc_sqlite.connect(str(path), autocommit=True) as conn, conn.cursor() as cur:
        for stmt in ("PRAGMA journal_mode=OFF", "PRAGMA synchronous=OFF", ddl, "BEGIN"):
            cur.execute(stmt)
        rng = np.random.default_rng(7)
        for chunk in sample._BUILDERS["drone_telemetry"](rng, counts):
            cur.adbc_ingest("drone_telemetry", pa.table(chunk), mode="append")
        cur.execute("COMMIT")


def write_spec(workdir: Path) -> Path:
    """The sample spec's drone_telemetry alone (its foreign keys dropped: the parents are not in this source)."""
    table = yaml.safe_load(SAMPLE_SPEC.read_text())["tables"]["drone_telemetry"]
    table.pop("foreign_keys", None)
    spec = {"source": {"sqlite": "telemetry.sqlite"}, "staging": "staging", "reports": "reports",
            "targets": {"postgres": {"schema": "core"}},
            "casts": yaml.safe_load(SAMPLE_SPEC.read_text())["casts"], "tables": {"drone_telemetry": table}}
    path = workdir / "bench.spec.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run_mode(mode: str, spec_path: str, pg_url: str) -> dict:
    """One mode in this process; returns its figures."""
    import dagster as dg

    from nova_pipeline.orchestration.defs import partitions as P
    from nova_pipeline.orchestration.defs.build import build_definitions
    from nova_pipeline.core.spec import load_spec

    spec = load_spec(spec_path)
    job = build_definitions(spec, spec_path, postgres_url=pg_url).resolve_job_def(P.JOB)
    instance = dg.DagsterInstance.ephemeral()
    keys = [(FIRST + timedelta(days=i)).isoformat() for i in range(DAYS)]
    runs = ([{"partition_key": k} for k in keys] if mode == "per-partition" else
            [{"tags": {"dagster/asset_partition_range_start": keys[0], "dagster/asset_partition_range_end": keys[-1]}}])
    phases: dict[str, float] = {}
    rows = 0
    started = time.perf_counter()
    for kwargs in runs:
        res = job.execute_in_process(instance=instance, raise_on_error=False, **kwargs)
        if not res.success:
            raise SystemExit(f"{mode}: run failed: {[e.message for e in res.all_events if e.is_failure][:2]}")
        failed = [e for e in res.get_asset_check_evaluations() if not e.passed]
        if failed:
            raise SystemExit(f"{mode}: checks failed: {[(e.check_name, e.partition) for e in failed[:5]]}")
        for ev in res.get_asset_materialization_events():
            mat = ev.materialization
            phase = mat.asset_key.path[1] if mat.asset_key.path[0] == "staging" else "load"
            phases[phase] = phases.get(phase, 0.0) + float(mat.metadata["seconds"].value)
            if phase == "load" and ev.partition in (kwargs.get("partition_key"), keys[0]):
                rows += int(mat.metadata["dagster/row_count"].value)  # a range run's count is on each partition
    seconds = time.perf_counter() - started
    # Range runs report each phase once per partition of the range: the same step time, counted once.
    phases = {k: round(v / (DAYS if mode == "range" else 1), 1) for k, v in phases.items()}
    return {"mode": mode, "runs": len(runs), "rows": rows, "seconds": round(seconds, 1),
            "rows_per_s": round(rows / seconds), "phase_seconds": phases,
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)}


def _embedded_postgres():
    import pgserver

    root = tempfile.mkdtemp(prefix="nova-bench-pg-")
    os.chmod(root, 0o755)  # pgserver runs postgres as its own user when started as root
    return pgserver.get_server(root, cleanup_mode="stop"), root


def _fresh_database(admin_url: str) -> str:
    import psycopg

    name = f"bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_url.replace("/postgres?", f"/{name}?", 1) if "/postgres?" in admin_url else \
        admin_url.rsplit("/", 1)[0] + f"/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=3_500_000, help="rows over the sample's 35 days (30 days ≥ 3 M)")
    parser.add_argument("--postgres-url", default=None, help="admin URL of a server to create databases on")
    parser.add_argument("--mode", choices=["per-partition", "range"], help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
    if args.mode:
        print(json.dumps(run_mode(args.mode, args.spec, args.url)))
        return
    workdir = Path(tempfile.mkdtemp(prefix="nova-partition-bench-"))
    server, pg_root = (None, None) if args.postgres_url else _embedded_postgres()
    admin = args.postgres_url or server.get_uri()
    try:
        started = time.perf_counter()
        generate(workdir / "telemetry.sqlite", args.rows)
        print(f"generated {args.rows:,} readings in {time.perf_counter() - started:.1f} s "
              f"({(workdir / 'telemetry.sqlite').stat().st_size / 2**20:.0f} MiB)", flush=True)
        spec_path = write_spec(workdir)
        for mode in ("per-partition", "range"):
            out = subprocess.run([sys.executable, __file__, "--mode", mode, "--spec", str(spec_path),
                                  "--url", _fresh_database(admin)], capture_output=True, text=True)
            if out.returncode:
                raise SystemExit(out.stderr[-3000:] or out.stdout[-3000:])
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{r['mode']:>13}: {r['runs']} run(s), {r['rows']:,} rows in {r['seconds']} s = {r['rows_per_s']:,} rows/s;"
                  f" phases {r['phase_seconds']}; peak RSS {r['peak_rss_mb']} MiB", flush=True)
    finally:
        if server is not None:
            server.cleanup()
            shutil.rmtree(pg_root, ignore_errors=True)
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
