"""CI smoke of benchmarks/migrate_bench.py: a tiny sample, one run, no pgloader; the table and ratios print."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "migrate_bench.py"


def test_benchmark_prints_phases_and_ratios():
    # Outside pytest's 0700 tmp root: the benchmark's PostgreSQL runs as another user when started as root.
    work = tempfile.mkdtemp(prefix="nova-bench-")
    os.chmod(work, 0o755)
    try:
        out = subprocess.run([sys.executable, str(BENCH), "--scale", "0.05", "--runs", "1", "--skip-pgloader",
                              "--workdir", work], capture_output=True, text=True, timeout=600)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert "MongoDB tables went to the in-process double (mongomock://bench)" in text
    e2e = re.search(r"^\| nova end to end \| ([\d.]+) \| [\d,]+ \| (\d+) \| ([\d,]+) loaded \+ ([\d,]+) quarantined "
                    r"= ([\d,]+) / ([\d,]+) \|$", text, re.M)
    assert e2e, text
    assert float(e2e.group(1)) > 0 and int(e2e.group(2)) > 0
    assert e2e.group(5) == e2e.group(6)  # every source row loaded or quarantined
    for phase in ("snapshot", "export", "transform", "load postgres", "load mongo", "constraints",
                  "validation postgres", "validation mongo", "report", "cli outside runs", "dagster overhead"):
        assert re.search(rf"^\| &nbsp; {phase} \| [\d.]+ \|", text, re.M), phase
    raw = re.search(r"^\| raw ingest .*\| ([\d,]+) / ([\d,]+) \|$", text, re.M)
    assert raw and raw.group(1) == raw.group(2)
    assert re.search(r"^\| nova-load / raw-ingest \(PostgreSQL\) \| [\d.]+ \| ≤ 1.2 \| (yes|NO) \|$", text, re.M)
    assert re.search(r"^\| nova peak RSS MB \(max over runs\) \| \d+ \| < 400 \| (yes|NO) \|$", text, re.M)
    assert re.search(r"^\| mongo audit_logs: nova docs/s / plain insert_many docs/s \| [\d.]+ ", text, re.M)
    assert "| pgloader |" not in text and "nova / pgloader" not in text  # --skip-pgloader


def test_benchmark_all_tables_to_postgres_with_the_default_command():
    work = tempfile.mkdtemp(prefix="nova-bench-")
    os.chmod(work, 0o755)
    try:
        out = subprocess.run([sys.executable, str(BENCH), "--scale", "0.05", "--runs", "1", "--skip-pgloader",
                              "--target", "all-postgres", "--nova", "default", "--workdir", work],
                             capture_output=True, text=True, timeout=600)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert out.returncode == 0, out.stderr[-2000:]
    text = out.stdout
    assert "every table, the log tables included, into PostgreSQL" in text
    source = re.search(r"^Nova sample scale 0.05: ([\d,]+) source rows \(([\d,]+) in PostgreSQL tables\)", text, re.M)
    assert source and source.group(1) == source.group(2)  # the log tables too
    e2e = re.search(r"^\| nova end to end \| [\d.]+ \| [\d,]+ \| \d+ \| [\d,]+ loaded \+ [\d,]+ quarantined "
                    r"= ([\d,]+) / ([\d,]+) \|$", text, re.M)
    assert e2e and e2e.group(1) == e2e.group(2) == source.group(1)
    assert "nova end to end, --no-backup" not in text  # --nova default only
    assert float(re.search(r"^\| &nbsp; pre-migration backup \| ([\d.]+) \|", text, re.M).group(1)) > 0
    assert "load mongo" not in text
    mem = re.search(r"^\| nova end to end \| ([\d.]+) \| (\d+) \| (\d+) \| [\d. ]+ \|$", text, re.M)
    assert mem and float(mem.group(1)) > 0 and int(mem.group(3)) >= int(mem.group(2)) > 0  # CPU, largest ≤ tree sum
