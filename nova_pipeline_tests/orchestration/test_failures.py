"""Failures a migration must survive: kill -9 then resume, a concurrent migration, staging that cannot be
written, quarantine beyond tolerance, and secrets that must never leak."""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import psycopg
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from nova_pipeline.cli.main import main
from nova_pipeline.orchestration.dagster_storage import INSTANCE_YAML
from nova_pipeline_tests import messy_db as m

BIG_ROWS = 120_000
HASH_SQL = "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY id), '')) FROM {} t"


def init_spec(db: Path, out: Path, **edits) -> Path:
    res = CliRunner().invoke(main, ["init", "--source", str(db), "--out", str(out)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    if edits:
        data = yaml.safe_load(out.read_text())
        for table, values in edits.items():
            data["tables"][table].update(values)
        out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


def migrate(spec: Path, url: str, *extra: str):
    return CliRunner().invoke(main, ["migrate", "--spec", str(spec), "--postgres-url", url, "--no-backup", *extra],
                              catch_exceptions=False)


def content(url: str, tables=("big", "small")) -> dict[str, tuple]:
    with psycopg.connect(url) as conn:
        return {t: conn.execute(HASH_SQL.format(f"public.{t}")).fetchone() for t in tables}


def wait_for_copy(url: str, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until a backend of the target database runs a COPY into `big` (or the process ends)."""
    db = url.split("/")[3].split("?")[0]
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while time.monotonic() < deadline and proc.poll() is None:
            active = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND query LIKE 'COPY%%big%%'"
                                  " AND state = 'active'", (db,)).fetchone()[0]
            if active:
                return
            time.sleep(0.02)
    raise AssertionError(f"no COPY seen (exit code {proc.poll()})")


def wait_for_no_sessions(url: str, timeout: float = 30) -> None:
    db = url.split("/")[3].split("?")[0]
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True) as conn:
        while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
                           (db, conn.info.backend_pid)).fetchone()[0]:
            assert time.monotonic() < deadline, "the killed migration's sessions did not end"
            time.sleep(0.05)


@pytest.fixture
def dagster_home(tmp_path, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_YAML)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    return home


def kill_9_mid_load(tmp_path: Path, pg_url: str, dagster_home: Path) -> Path:
    """Start `migrate` as a subprocess, SIGKILL it while it COPYs into `big`; return the spec.

    Meanwhile a second migration of the same source must refuse at once (its staging area is held).
    """
    db = m.build_big_db(tmp_path / "big.sqlite", rows=BIG_ROWS)
    spec = init_spec(db, tmp_path / "spec.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(dagster_home), "DAGSTER_DISABLE_TELEMETRY": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "nova_pipeline.cli.main", "migrate", "--spec", str(spec),
                             "--postgres-url", pg_url, "--no-backup"], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_copy(pg_url, proc)
        second = migrate(spec, pg_url)
        assert second.exit_code == 2 and "in use by another migration" in second.output  # its staging area
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    wait_for_no_sessions(pg_url)
    runs = dg.DagsterInstance.get().get_runs()
    assert [r.status for r in runs] == [dg.DagsterRunStatus.STARTED]  # killed: it never finished
    return spec


def assert_equals_clean_run(spec: Path, url: str, clean_url: str) -> None:
    assert migrate(spec, clean_url).exit_code == 0
    assert content(url) == content(clean_url)
    assert content(url)["big"][0] == BIG_ROWS  # no duplicates
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM pg_constraint WHERE conrelid = 'public.big'::regclass"
                            " AND contype = 'p'").fetchone()[0] == 1


def test_kill_9_mid_load_then_rerun_equals_a_clean_run(tmp_path, pg_url, make_pg_url, dagster_home):
    spec = kill_9_mid_load(tmp_path, pg_url, dagster_home)
    rerun = migrate(spec, pg_url)
    assert rerun.exit_code == 0, rerun.output
    assert_equals_clean_run(spec, pg_url, make_pg_url())


def test_kill_9_mid_load_then_resume_equals_a_clean_run(tmp_path, pg_url, make_pg_url, dagster_home):
    spec = kill_9_mid_load(tmp_path, pg_url, dagster_home)
    resumed = CliRunner().invoke(main, ["resume", "--spec", str(spec), "--postgres-url", pg_url,
                                        "--report", str(tmp_path / "resume.json")], catch_exceptions=False)
    assert resumed.exit_code == 0, resumed.output
    report = json.loads((tmp_path / "resume.json").read_text())
    assert report["tables"]["big"]["loaded_rows"] == report["tables"]["big"]["source_rows"] == BIG_ROWS
    assert_equals_clean_run(spec, pg_url, make_pg_url())


def small_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript("""
        CREATE TABLE items (id INTEGER PRIMARY KEY, qty INTEGER, name TEXT);
        INSERT INTO items VALUES (1, 5, 'a'), (2, 7, 'b'), (3, 'lots', 'c'), (4, 9, 'd'), (5, 1, 'e');
    """)
    conn.commit()
    conn.close()
    return path


def unwritable_staging_run(tmp_path: Path, pg_url: str):
    spec = init_spec(small_db(tmp_path / "s.sqlite"), tmp_path / "spec.yaml")
    (tmp_path / "blocker").write_text("a regular file where the staging directory should be")  # root ignores chmod
    data = yaml.safe_load(spec.read_text())
    data["staging"] = "blocker/staging"
    spec.write_text(yaml.safe_dump(data))
    return migrate(spec, pg_url, "--report", str(tmp_path / "r.json"))


def test_staging_not_writable_is_a_clear_error(tmp_path, pg_url):
    res = unwritable_staging_run(tmp_path, pg_url)
    assert res.exit_code == 2, res.output
    [line] = res.output.strip().splitlines()
    assert line.startswith(f"nova-pipeline: {tmp_path}/blocker/staging/s-") and line.endswith(
        ": cannot create the staging area: Not a directory")
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SELECT to_regclass('public.items')").fetchone()[0] is None


def test_staging_not_writable_stops_before_anything_runs(tmp_path, pg_url):
    unwritable_staging_run(tmp_path, pg_url)
    assert not (tmp_path / "r.json").exists() and not (tmp_path / "data").exists()


def test_disk_full_mid_write_leaves_no_parquet_that_looks_complete(tmp_path, pg_url, monkeypatch):
    spec = init_spec(small_db(tmp_path / "s.sqlite"), tmp_path / "spec.yaml")
    real_write = pq.ParquetWriter.write_batch

    def write_then_fail(self, batch, *args, **kwargs):  # the disk fills up right after the first batch
        real_write(self, batch, *args, **kwargs)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(pq.ParquetWriter, "write_batch", write_then_fail)
    res = migrate(spec, pg_url, "--report", str(tmp_path / "r.json"))
    assert res.exit_code == 1, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["tables"]["items"]["status"] == "failed"
    assert "No space left on device" in report["tables"]["items"]["error"]
    staging = tmp_path / "data" / "staging"
    assert not list(staging.rglob("*.parquet")) and not list(staging.rglob("*.tmp"))


def test_quarantine_beyond_tolerance_fails_the_blocking_check(tmp_path, pg_url):
    spec = init_spec(small_db(tmp_path / "s.sqlite"), tmp_path / "spec.yaml",
                     items={"max_quarantined_rows": 0})
    data = yaml.safe_load(spec.read_text())
    data["tables"]["items"]["columns"]["qty"]["type"] = "bigint"  # init would keep 'lots' as text otherwise
    spec.write_text(yaml.safe_dump(data))
    res = migrate(spec, pg_url, "--report", str(tmp_path / "r.json"))
    assert res.exit_code == 1, res.output
    report = json.loads((tmp_path / "r.json").read_text())
    tolerance = [c for c in report["checks"] if c["check"] == "quarantine_tolerance"]
    assert [c["passed"] for c in tolerance] == [False]
    assert "1 row(s) quarantined > max_quarantined_rows 0" in tolerance[0]["detail"]
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT table_name, source_key, column_name, raw_value, reason"
                            " FROM nova_meta.nova_quarantine").fetchall()
    assert rows == [("items", '{"id":3}', "qty", "lots", "not an integer")]


def test_password_never_appears_in_output_report_or_event_log(tmp_path, pg_url, dagster_home):
    password = "N0va-s3cret-PW"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE nova_secret_user LOGIN SUPERUSER PASSWORD '{password}'")
    url = pg_url.replace("postgresql://postgres:@", f"postgresql://nova_secret_user:{password}@", 1)
    assert password in url
    spec = init_spec(small_db(tmp_path / "s.sqlite"), tmp_path / "spec.yaml")
    data = yaml.safe_load(spec.read_text())
    data["tables"]["items"]["columns"]["qty"]["type"] = "bigint"
    data["tables"]["items"]["max_quarantined_rows"] = 0  # a failing check: its messages are searched too
    spec.write_text(yaml.safe_dump(data))
    res = migrate(spec, url, "--report", str(tmp_path / "r.json"), "--json")
    assert res.exit_code == 1
    texts = {"output": res.output, "report": (tmp_path / "r.json").read_text()}
    texts.update({p.name: p.read_bytes().decode("utf-8", "replace") for p in (tmp_path / "data" / "reports").rglob("*")
                  if p.is_file()})
    instance = dg.DagsterInstance.get()
    for run in instance.get_runs():
        texts[run.run_id] = "\n".join(repr(e) for e in instance.all_logs(run.run_id)) + repr(run.tags)
    unreachable = migrate(spec, url.replace("?host=", "?host=/nowhere"))
    texts["unreachable"] = unreachable.output
    assert unreachable.exit_code == 2
    leaks = [name for name, text in texts.items() if password in text]
    assert not leaks, leaks
