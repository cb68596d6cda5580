"""End-to-end benchmark: `nova-pipeline migrate` against pgloader and a raw Arrow → COPY ingest.

Usage: python benchmarks/migrate_bench.py [--scale 50] [--runs 3] [--target all-postgres] [--skip-pgloader]
                                          [--nova default,no-backup] [--workdir DIR]

Generates the Nova sample once (scale 50 ≈ 2.16 M rows, 250 ≈ 10 M), starts one
local PostgreSQL (the pgserver wheel's binaries) listening on 127.0.0.1 and a
Unix socket, then per run, in turn and each into a fresh database:

  nova      `nova-pipeline migrate` as README shows it (pre-migration backup included:
            NOVA_BACKUP_KEY is set), then the same with `--no-backup` (every phase: snapshot,
            setup, export, transform, load, constraints, validation, smoke tests, report),
            each a subprocess; with --target both the Mongo tables go to the in-process double
            (NOVA_MONGO_URI=mongomock://bench)
  pgloader  pgloader on the same SQLite file, `on error resume next` and DATETIME kept as text
            (its defaults hang on this database: see run_pgloader)
  raw       Arrow batches from SQLite (ADBC) → adbc_ingest (COPY) of the PostgreSQL tables
            of the spec: the floor any loader of these tables can reach on this machine

Layouts (--target): `all-postgres` every table, the log tables included (schema `logs`),
into PostgreSQL; `postgres` only the spec's PostgreSQL tables; `both` the spec as it is.

Memory is polled every 0.2 s over each path's process tree: "largest process" is
the highest peak RSS (VmHWM) of any one process of the tree, "tree sum" the
highest sum of the tree's current RSS; the PostgreSQL server is shared and
not counted in either. CPU s is user + system time of the tree (rusage of
the waited children), the server again excluded. Per-phase times of the nova
runs come from their Dagster runs (step events and the `seconds` metadata of
each materialization); the pre-migration backup's from its set's manifest.
Figures are medians over the runs; `uptime`'s load average is printed per run.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import psycopg
import yaml

ROOT = Path(__file__).resolve().parents[1]
SPEC = ROOT / "data" / "nova.spec.yaml"
MONGO_URI = "mongomock://bench"
POLL_S = 0.2
RSS_LIMIT_MB = 400
PGLOADER_TIMEOUT_S = 900
PHASES = ("pre-migration backup", "snapshot", "setup", "export", "transform", "load postgres", "load mongo", "constraints",
          "validation postgres", "validation mongo", "report", "cli outside runs", "dagster overhead")
MONGO_DOUBLE_PHASES = ("load mongo", "validation mongo")  # dominated by mongomock's pure-Python inserts and scans


def _hwm(p: psutil.Process) -> int:
    """Peak RSS (VmHWM) of one process in bytes; its current RSS where /proc has no VmHWM."""
    try:
        with open(f"/proc/{p.pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return p.memory_info().rss


class TreeMonitor:
    """Peak RSS of a process and all its descendants, polled in a thread: the largest single process's peak
    (VmHWM, so a spike between polls counts) and the peak of the tree's summed RSS."""

    def __init__(self, pid: int):
        self.root, self.peak, self.largest, self._stop = psutil.Process(pid), 0, 0, threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            total = 0
            for p in procs:
                try:
                    total += p.memory_info().rss
                    self.largest = max(self.largest, _hwm(p))
                except psutil.NoSuchProcess:
                    pass
            self.peak = max(self.peak, total)
            self._stop.wait(POLL_S)

    def stop(self) -> tuple[float, float]:
        """Stop polling; (largest process's peak RSS, peak tree sum) in MB."""
        self._stop.set()
        self._thread.join()
        return self.largest / 2**20, self.peak / 2**20


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def load_average() -> float:
    """The 1-minute load average (as `uptime` prints it)."""
    return os.getloadavg()[0]


def run_measured(cmd: list[str], env: dict | None = None, log: Path | None = None,
                 timeout: float | None = None) -> dict:
    """wall s, rss (largest process MB), tree_rss (tree sum MB), cpu s, load (1-min average before) and exit
    code of a command; killed after `timeout` s (exit code -9)."""
    load, cpu = load_average(), _children_cpu()
    started = time.perf_counter()
    with open(log or os.devnull, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
        mon = TreeMonitor(proc.pid)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
    wall = time.perf_counter() - started
    largest, tree = mon.stop()
    return {"wall": wall, "rss": largest, "tree_rss": tree, "cpu": _children_cpu() - cpu, "load": load, "code": code}


class Postgres:
    """A throwaway PostgreSQL 16 (pgserver's binaries) on 127.0.0.1:<free port> and a socket in `root`."""

    def __init__(self, root: Path):
        from pgserver._commands import POSTGRES_BIN_PATH
        from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        self.bin, self.data, self.sock = POSTGRES_BIN_PATH, root / "pgdata", root / "pgsock"
        # postgres refuses to run as root; pgserver's wheel creates the `pgserver` user for that.
        self.user = "pgserver" if os.geteuid() == 0 else None
        shutil.rmtree(root, ignore_errors=True)  # a kept --workdir holds the last run's cluster
        self.sock.mkdir(parents=True)
        for d in (root, self.sock):
            d.chmod(0o777)
        self.data.mkdir()
        if self.user:  # as pgserver.get_server does before its first start on a machine
            ensure_user_exists(self.user)
            ensure_prefix_permissions(POSTGRES_BIN_PATH)
            ensure_prefix_permissions(self.data)
            shutil.chown(self.data, self.user)
        self._pg("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self._pg("pg_ctl", "-D", str(self.data), "-w", "-l", str(self.data / "server.log"),
                 "-o", f"-h 127.0.0.1 -p {self.port} -k {self.sock}", "start")

    def _pg(self, exe: str, *args: str) -> None:
        subprocess.run([str(self.bin / exe), *args], user=self.user, check=True, stdout=subprocess.DEVNULL)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def fresh_db(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-w", "-m", "fast", "stop")


def table_rows(url: str) -> dict[str, int]:
    """Exact row count of every user table of a database, keyed by schema.table."""
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'nova_meta')").fetchall()
        return {f"{s}.{t}": conn.execute(psycopg.sql.SQL("SELECT count(*) FROM {}").format(
            psycopg.sql.Identifier(s, t))).fetchone()[0] for s, t in tables}


def bench_spec(work: Path, sqlite: Path, target: str) -> Path:
    """The Nova spec pointed at the benchmark's files: as it is (both), its PostgreSQL tables only (postgres), or
    every table into PostgreSQL (all-postgres: the Mongo tables become `logs.<name>` with the same columns,
    keys and indexes); smoke tests keep their queries, not their scale-1 answers."""
    s = yaml.safe_load(SPEC.read_text())
    if target == "all-postgres":
        for name, t in s["tables"].items():
            if t.get("target") == "mongo":
                for k in ("collection", "ttl"):
                    t.pop(k, None)
                t.update(target="postgres", table=f"logs.{name}")
                for ix in t.get("indexes", []):
                    ix["columns"] = [c.lstrip("-") for c in ix["columns"]]  # Mongo's descending-key marker
        s["targets"].pop("mongo", None)
        target = "postgres"
    if target != "both":
        s["tables"] = {k: v for k, v in s["tables"].items() if v.get("target", "postgres") == target}
        s["smoke_tests"] = [t for t in s.get("smoke_tests", []) if t.get("target", "postgres") == target]
    s.update(source={"sqlite": str(sqlite)}, staging=str(work / "staging"), reports=str(work / "reports"),
             backup={"dest": str(work / "backups")})
    if target == "both":  # mongo_reference builds the documents again from the clean Parquet
        s["keep_staging"] = True
    for t in s.get("smoke_tests", []):
        for k in ("expect_rows", "expect_value", "max_ms"):
            t.pop(k, None)
    path = work / "bench.spec.yaml"
    path.write_text(yaml.safe_dump(s, sort_keys=False, allow_unicode=True))
    return path


def nova_phases(dagster_home: Path, since: float) -> dict[str, float]:
    """Seconds per phase of the Dagster runs started after `since` (the main job and, e.g., the partition range
    run), split as the migration report splits them (orchestration.phase_times); "in runs" is the runs' wall time."""
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    import dagster as dg

    from nova_pipeline.orchestration.phase_times import run_phases, run_wall

    instance = dg.DagsterInstance.get()
    runs = [r.run_id for r in instance.get_runs(limit=50)
            if instance.get_run_record_by_id(r.run_id).create_timestamp.timestamp() >= since]
    phases = {**dict.fromkeys(PHASES, 0.0), **run_phases(instance, runs)}
    phases["runs"] = float(len(runs))
    phases["in runs"] = sum(run_wall(instance, run_id) for run_id in runs)
    return phases


NOVA_VARIANTS = {"default": [], "no-backup": ["--no-backup"],  # `migrate` as README shows it, and without its backup
                 "encrypted-staging": ["--no-backup"],  # the latter with the spec's staging_encryption: true
                 # the --no-backup migrate with each Dagster executor (--target postgres|all-postgres: mongomock
                 # forces in_process)
                 "in-process": ["--no-backup", "--executor", "in_process"],
                 "multiprocess": ["--no-backup", "--executor", "multiprocess"]}


def encrypted_spec(spec_path: Path) -> Path:
    """A copy of the benchmark spec with `staging_encryption: true` (key: NOVA_BACKUP_KEY)."""
    path = spec_path.with_name("bench-encrypted.spec.yaml")
    path.write_text(yaml.safe_dump({**yaml.safe_load(spec_path.read_text()), "staging_encryption": True},
                                   sort_keys=False, allow_unicode=True))
    return path


def run_nova(work: Path, spec_path: Path, pg: Postgres, i: int, variant: str = "no-backup") -> dict:
    name = f"nova_{variant}_{i}"
    url = pg.fresh_db(name)
    report = work / f"{name}.json"
    env = {**os.environ, "NOVA_MONGO_URI": MONGO_URI, "DAGSTER_HOME": str(dagster_home(work)),
           "DAGSTER_DISABLE_TELEMETRY": "1", "NOVA_BACKUP_KEY": os.environ.get("NOVA_BACKUP_KEY") or BACKUP_KEY}
    if variant == "encrypted-staging":
        spec_path = encrypted_spec(spec_path)
    cmd = [sys.executable, "-m", "nova_pipeline.cli.main", "migrate", "--spec", str(spec_path), "--postgres-url", url,
           *NOVA_VARIANTS[variant], "--report", str(report)]
    since = time.time()
    out = run_measured(cmd, env, work / f"{name}.log")
    rep = json.loads(report.read_text()) if report.exists() else {}
    if out["code"] != 0 or rep.get("status") != "succeeded":
        raise SystemExit(f"nova-pipeline migrate failed (exit {out['code']}); see {work / f'{name}.log'}")
    phases = nova_phases(work / "dagster", since)
    phases["pre-migration backup"] = backup_seconds(work / "backups")
    # start-up, imports, run creation, backup, reconcile, report files
    phases["cli outside runs"] += max(out["wall"] - phases["in runs"] - phases["pre-migration backup"], 0.0)
    loaded = sum(t.get("loaded_rows", 0) for t in rep.get("tables", {}).values())
    quarantined = sum(t.get("quarantined_rows", 0) for t in rep.get("tables", {}).values())
    return {**out, "phases": phases, "kept": loaded, "quarantined": quarantined}


BACKUP_KEY = secrets.token_hex(32)


def dagster_home(work: Path) -> Path:
    """The runs' DAGSTER_HOME, configured as nova's default home is (its packaged dagster.yaml: event log
    connections kept open); Dagster takes its own, slower, defaults in a DAGSTER_HOME without a dagster.yaml."""
    import nova_pipeline

    home = work / "dagster"
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text((Path(nova_pipeline.__file__).parent / "orchestration" / "dagster.yaml").read_text())
    return home


def backup_seconds(dest: Path) -> float:
    """duration_s of the backup set the run wrote (0 when none), which is then deleted (sets are large)."""
    seconds = 0.0
    for manifest in dest.glob("*/manifest.json"):
        seconds += json.loads(manifest.read_text()).get("duration_s", 0.0)
        shutil.rmtree(manifest.parent)
    return seconds


def run_pgloader(work: Path, sqlite: Path, pg: Postgres, i: int, tables: list[str] | None) -> dict:
    """pgloader of every table, or only `tables`, with the two options it needs to finish on this database.

    With its defaults, Debian's pgloader 3.6.7 turns epoch-integer DATETIMEs into dates PostgreSQL rejects,
    stops a table's writer at its first error while the table's reader keeps filling a bounded queue, and
    hangs there for good (its other workers sit in idle COPY sessions). `on error resume next` keeps the
    writers going; `CAST type datetime to text` keeps the timestamps as they were stored (text, not
    timestamptz: no conversion at all). REAL still becomes float4 (≈1 m on GPS coordinates).
    """
    url = pg.fresh_db(f"pgloader_{i}")
    only = "\n INCLUDING ONLY TABLE NAMES LIKE " + ", ".join(f"'{t}'" for t in tables) if tables else ""
    load = work / "pgloader.load"
    load.write_text(f"LOAD DATABASE FROM sqlite://{sqlite} INTO {url}\n WITH on error resume next\n"
                    f" CAST type datetime to text drop typemod{only};\n")
    out = run_measured(["pgloader", str(load)], log=work / f"pgloader_{i}.log", timeout=PGLOADER_TIMEOUT_S)
    return {**out, "kept": sum(table_rows(url).values())}


def run_raw(work: Path, sqlite: Path, tables: list[str], pg: Postgres, i: int) -> dict:
    url = pg.fresh_db(f"raw_{i}")
    cmd = [sys.executable, __file__, "--raw-ingest-worker", str(sqlite), url, *tables]
    out = run_measured(cmd, log=work / f"raw_{i}.log")
    if out["code"] != 0:
        raise SystemExit(f"raw ingest failed; see {work / f'raw_{i}.log'}")
    return {**out, "kept": sum(table_rows(url).values())}


def raw_ingest_worker(sqlite: str, url: str, tables: list[str]) -> None:
    """Arrow record batches from SQLite straight into PostgreSQL (adbc_ingest: COPY), one table after another."""
    import adbc_driver_postgresql.dbapi as pg_adbc
    import adbc_driver_sqlite.dbapi as sqlite_adbc

    with sqlite_adbc.connect(f"file:{sqlite}?mode=ro") as src, pg_adbc.connect(url) as dst:
        for table in tables:
            with src.cursor() as cur, dst.cursor() as out:
                cur.execute(f'SELECT * FROM "{table}"')
                out.adbc_ingest(table, cur.fetch_record_batch(), mode="create")
            dst.commit()


def mongo_reference(spec_path: Path) -> list[dict]:
    """Per Mongo collection: documents/s of a plain insert_many (10 k per call) of the documents nova builds.

    The clock covers the inserts only; nova's figure covers reading clean Parquet,
    building, encoding-checking and writing the documents, so the ratio is what
    nova's document building and bulk writes cost over the bare driver call.
    """
    import mongomock

    from nova_pipeline.orchestration.defs.assets import staging_of
    from nova_pipeline.load.mongo_documents import iter_documents
    from nova_pipeline.core.spec import load_spec

    spec = load_spec(spec_path)
    out = []
    for table, t in spec.table_items("mongo"):
        if table in spec.embedded_tables():
            continue
        coll = mongomock.MongoClient(tz_aware=True)["ref"][table]
        n, seconds = 0, 0.0
        for batch in iter_documents(spec, table, staging_of(spec)):
            docs = batch.documents
            for k in range(0, len(docs), 10_000):
                started = time.perf_counter()
                coll.insert_many(docs[k: k + 10_000], ordered=False)
                seconds += time.perf_counter() - started
            n += len(docs)
        out.append({"table": table, "docs": n, "insert_many_docs_per_s": n / seconds if seconds else 0.0})
    return out


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _goal(scale: float) -> float:
    """nova / pgloader wall-time goal of issue 20: ≤ 0.8 at about 2 M rows, ≤ 0.6 from scale 250 (≈ 10 M)."""
    return 0.6 if scale >= 250 else 0.8


LAYOUTS = {"both": f"MongoDB tables went to the in-process double ({MONGO_URI}).",
           "postgres": "PostgreSQL tables only (--target postgres), every path.",
           "all-postgres": "every table, the log tables included, into PostgreSQL (--target all-postgres), every path."}
NOVA_LABELS = {"default": "nova end to end", "no-backup": "nova end to end, --no-backup",
               "encrypted-staging": "nova end to end, --no-backup, encrypted staging",
               "in-process": "nova --no-backup, in_process executor", "multiprocess": "nova --no-backup, multiprocess executor"}
COMMANDS = {"default": "migrate", "no-backup": "migrate --no-backup",
            "encrypted-staging": "migrate --no-backup, staging_encryption",
            "in-process": "migrate --no-backup --executor in_process",
            "multiprocess": "migrate --no-backup --executor multiprocess"}


def render(scale: float, source_rows: int, pg_tables_rows: int, nova: dict[str, list[dict]], pgl: list[dict],
           raw: list[dict], mongo_nova: dict, mongo_ref: list[dict], target: str = "both") -> str:
    variants = [v for v in NOVA_VARIANTS if nova.get(v)]
    runs = len(nova[variants[0]])
    lines = [f"Nova sample scale {scale:g}: {source_rows:,} source rows ({pg_tables_rows:,} in PostgreSQL tables); "
             f"median of {runs} run(s); " + LAYOUTS[target], "",
             "| path | wall s | rows/s | max RSS MB (largest process) | rows kept / source |", "|---|---:|---:|---:|---|"]
    for v in variants:
        rs = nova[v]
        wall, kept = _median([r["wall"] for r in rs]), rs[0]["kept"] + rs[0]["quarantined"]
        lines.append(f"| {NOVA_LABELS[v]} | {wall:.2f} | {source_rows / wall:,.0f} | {_median([r['rss'] for r in rs]):.0f} "
                     f"| {rs[0]['kept']:,} loaded + {rs[0]['quarantined']:,} quarantined = {kept:,} / {source_rows:,} |")
    if pgl:
        w = _median([r["wall"] for r in pgl])
        lines.append(f"| pgloader | {w:.2f} | {source_rows / w:,.0f} | {_median([r['rss'] for r in pgl]):.0f} "
                     f"| {pgl[0]['kept']:,} / {source_rows:,} ("
                     + (f"killed after {PGLOADER_TIMEOUT_S} s: hung" if pgl[0]["code"] == -9 else f"exit {pgl[0]['code']}")
                     + "; DATETIME kept as text, REAL as float4) |")
    rw = _median([r["wall"] for r in raw])
    lines.append(f"| raw ingest (ADBC SQLite → adbc_ingest COPY, PostgreSQL tables, no keys) | {rw:.2f} "
                 f"| {pg_tables_rows / rw:,.0f} | {_median([r['rss'] for r in raw]):.0f} "
                 f"| {raw[0]['kept']:,} / {pg_tables_rows:,} |")

    paths = [(NOVA_LABELS[v], nova[v]) for v in variants] + ([("pgloader", pgl)] if pgl else []) + [("raw ingest", raw)]
    lines += ["", "Resources (medians; the PostgreSQL server is not counted): largest process = the highest peak RSS "
              "of any one process of the path's tree; tree sum = the highest summed RSS of the whole tree.", "",
              "| path | CPU s (user + sys) | largest process MB | tree sum MB | load average before each run |",
              "|---|---:|---:|---:|---|"]
    for label, rs in paths:
        loads = " ".join(f"{r['load']:.2f}" for r in rs)
        lines.append(f"| {label} | {_median([r['cpu'] for r in rs]):.1f} | {_median([r['rss'] for r in rs]):.0f} "
                     f"| {_median([r['tree_rss'] for r in rs]):.0f} | {loads} |")

    lines += ["", "| phase (median s) | " + " | ".join(COMMANDS[v] for v in variants) + " | rows/s |",
              "|---|" + "---:|" * (len(variants) + 1)]
    for phase in PHASES:
        if phase in MONGO_DOUBLE_PHASES and target != "both":
            continue
        secs = [_median([r["phases"][phase] for r in nova[v]]) for v in variants]
        rows = pg_tables_rows if phase == "load postgres" else source_rows
        if phase in MONGO_DOUBLE_PHASES:
            rows = source_rows - pg_tables_rows
        sec = secs[0]
        rate = f"{rows / sec:,.0f}" if sec > 0 and phase not in ("report", "cli outside runs", "dagster overhead",
                                                                "setup", "pre-migration backup") else ""
        lines.append(f"| &nbsp; {phase} | " + " | ".join(f"{x:.2f}" for x in secs) + f" | {rate} |")

    first = nova[variants[0]]
    load = _median([r["phases"]["load postgres"] for r in first])
    peak = max(r["rss"] for v in variants for r in nova[v])
    goal = _goal(scale)
    lines += ["", "| ratio | value | goal | met |", "|---|---:|---|---|"]
    if pgl:
        pgl_wall = _median([r["wall"] for r in pgl])
        for v in variants:
            ratio = _median([r["wall"] for r in nova[v]]) / pgl_wall
            lines.append(f"| nova / pgloader (end to end, `{COMMANDS[v]}`) | {ratio:.2f} | ≤ {goal} "
                         f"| {'yes' if ratio <= goal else 'NO'} |")
        if target == "both":
            ratio = _median([r["wall"] - sum(r["phases"][p] for p in MONGO_DOUBLE_PHASES) for r in first]) / pgl_wall
            lines.append(f"| nova / pgloader, without the Mongo double's steps ({' + '.join(MONGO_DOUBLE_PHASES)}) "
                         f"| {ratio:.2f} | ≤ {goal} | {'yes' if ratio <= goal else 'NO'} |")
    ratio = load / rw
    lines.append(f"| nova-load / raw-ingest (PostgreSQL) | {ratio:.2f} | ≤ 1.2 | {'yes' if ratio <= 1.2 else 'NO'} |")
    lines.append(f"| nova peak RSS MB (max over runs) | {peak:.0f} | < {RSS_LIMIT_MB} | {'yes' if peak < RSS_LIMIT_MB else 'NO'} |")
    for ref in mongo_ref:
        ours = mongo_nova.get(ref["table"])
        if ours and ref["insert_many_docs_per_s"]:
            lines.append(f"| mongo {ref['table']}: nova docs/s / plain insert_many docs/s | "
                         f"{ours / ref['insert_many_docs_per_s']:.2f} ({ours:,.0f} / {ref['insert_many_docs_per_s']:,.0f}) "
                         f"| report | |")
    return "\n".join(lines)


def mongo_rates(dagster_home: Path, spec) -> dict[str, float]:
    """Documents/s of each Mongo collection's latest load (materialization metadata)."""
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    import dagster as dg

    from nova_pipeline.orchestration.defs.assets import target_key

    instance = dg.DagsterInstance.get()
    out = {}
    for table, _ in spec.table_items("mongo"):
        key = target_key(spec, table)
        ev = instance.get_latest_materialization_event(key) if key else None
        if ev and ev.asset_materialization and "rows_per_s" in ev.asset_materialization.metadata:
            out[table] = float(ev.asset_materialization.metadata["rows_per_s"].value)
    return out


def _progress(i: int, path: str, out: dict) -> None:
    print(f"run {i + 1}: {path} {out['wall']:.1f} s wall, {out['cpu']:.1f} s CPU, load {out['load']:.2f}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=50.0, help="Nova sample scale (50 ≈ 2.16 M rows, 250 ≈ 10 M)")
    parser.add_argument("--runs", type=int, default=3, help="alternating runs of each path (medians are printed)")
    parser.add_argument("--skip-pgloader", action="store_true", help="do not run pgloader")
    parser.add_argument("--target", choices=list(LAYOUTS), default="both",
                        help="all-postgres: every table, logs included, into PostgreSQL; postgres: only the spec's "
                             "PostgreSQL tables; both: the spec as it is, Mongo tables to the in-process double")
    parser.add_argument("--nova", default="default,no-backup",
                        help="which nova commands to run, comma-separated: default (`migrate`, backup included), "
                             "no-backup (`migrate --no-backup`), encrypted-staging (the latter with "
                             "staging_encryption: true)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep files here (default: a temporary directory)")
    parser.add_argument("--raw-ingest-worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    variants = [v for v in args.nova.split(",") if v]
    if not variants or set(variants) - set(NOVA_VARIANTS):
        parser.error(f"--nova: choose from {', '.join(NOVA_VARIANTS)}, got {args.nova!r}")
    if args.raw_ingest_worker:
        sqlite, url, *tables = args.raw_ingest_worker
        raw_ingest_worker(sqlite, url, tables)
        return 0
    if not args.skip_pgloader and shutil.which("pgloader") is None:
        parser.error("pgloader is not installed (apt-get install -y pgloader), or pass --skip-pgloader")
    work = args.workdir or Path(tempfile.mkdtemp(prefix="nova-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    from nova_pipeline.demo.sample import generate
    from nova_pipeline.core.spec import load_spec

    sqlite = work / "nova.sqlite"
    started = time.perf_counter()
    counts = generate(sqlite, scale=args.scale)
    print(f"generated {sqlite}: {sum(counts.values()):,} rows in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    spec_path = bench_spec(work, sqlite, args.target)
    spec = load_spec(spec_path)
    pg_tables = [t for t, _ in spec.table_items("postgres")]
    pg = Postgres(work / "pg")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops the server
    nova, pgl, raw = {v: [] for v in variants}, [], []
    try:
        for i in range(args.runs):  # interleaved: every path once per round
            for v in variants:
                nova[v].append(run_nova(work, spec_path, pg, i, v))
                _progress(i, COMMANDS[v], nova[v][-1])
            if not args.skip_pgloader:
                pgl.append(run_pgloader(work, sqlite, pg, i, pg_tables if args.target == "postgres" else None))
                _progress(i, "pgloader", pgl[-1])
            raw.append(run_raw(work, sqlite, pg_tables, pg, i))
            _progress(i, "raw ingest", raw[-1])
        both = args.target == "both"
        mongo_nova = mongo_rates(work / "dagster", spec) if both else {}
        mongo_ref = mongo_reference(spec_path) if both else []
    finally:
        pg.stop()
    source = sum(counts[t] for t in pg_tables) if args.target != "both" else sum(counts.values())
    print(render(args.scale, source, sum(counts[t] for t in pg_tables), nova, pgl, raw,
                 mongo_nova, mongo_ref, args.target))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
