"""kill -9 during a backup: no plaintext copy anywhere, leftovers swept by the next start, private file modes."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time

import psycopg
import pytest
from click.testing import CliRunner
from nova_pipeline_tests.backup.test_backup_helpers import KEY_HEX, make_spec, populate_postgres

from nova_pipeline.cli.backup import backup_group

SQLITE_MARK = b"SQLITE-PLAINTEXT-MARKER-5c1e"
PG_MARK = b"PG-PLAINTEXT-MARKER-9a7d"
SQLITE_HEADER = b"SQLite format 3\x00"

# The real `backup create`, paused deterministically right after the first bytes
# of the SQLite source were handed to the sealing writer (the last step).
PAUSING_CHILD = r"""
import sys, time
from nova_pipeline.backup import crypto

paused, write = sys.argv[1], crypto.SealedWriter.write

def pausing_write(self, data):
    n = write(self, data)
    if bytes(data[:16]) == b"SQLite format 3\x00":
        open(paused, "w").close()
        time.sleep(600)
    return n

crypto.SealedWriter.write = pausing_write
from nova_pipeline.cli.backup import backup_group
backup_group(sys.argv[2:])
"""


@pytest.fixture
def env(tmp_path, pg_url, monkeypatch):
    monkeypatch.setenv("NOVA_BACKUP_KEY", KEY_HEX)
    populate_postgres(pg_url)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("INSERT INTO core.users (id, name) VALUES (7777, %s)", (PG_MARK.decode(),))
    make_spec(tmp_path, pg_url, None)
    with sqlite3.connect(tmp_path / "source.sqlite") as conn:
        conn.execute("INSERT INTO users VALUES (3, ?)", (SQLITE_MARK.decode(),))
    conn.close()
    systmp = tmp_path / "systmp"
    systmp.mkdir()
    child_env = {**os.environ, "TMPDIR": str(systmp), "NOVA_BACKUP_KEY": KEY_HEX}
    return {"spec": str(tmp_path / "spec.yaml"), "dest": tmp_path / "backups", "systmp": systmp, "child_env": child_env}


def _plaintext_copies(*roots) -> list[str]:
    """Files under roots holding the SQLite header or a marker row of the source or of PostgreSQL."""
    found = []
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for name in names:
                path = os.path.join(dirpath, name)
                with open(path, "rb") as f:
                    data = f.read()
                if data.startswith(SQLITE_HEADER) or SQLITE_MARK in data or PG_MARK in data:
                    found.append(path)
    return found


def _entries(path) -> list[str]:
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def test_killed_backup_leaves_no_plaintext_and_is_swept(env, tmp_path):
    paused = tmp_path / "paused"
    child = subprocess.Popen([sys.executable, "-c", PAUSING_CHILD, str(paused), "create", "--spec", env["spec"]],
                             cwd=tmp_path, env=env["child_env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not paused.exists():
            assert child.poll() is None, child.communicate()[1].decode()[-2000:]
            assert time.monotonic() < deadline, "the backup never reached the SQLite step"
            time.sleep(0.05)
        # While the backup runs, a sweep leaves its work directory alone.
        assert CliRunner().invoke(backup_group, ["list", "--spec", env["spec"]]).exit_code == 0
        work = env["dest"] / ".work"
        running = {n: _entries(work / n) for n in _entries(work) if not n.endswith(".lock")}
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()

    assert _plaintext_copies(env["systmp"], env["dest"]) == []
    assert _entries(env["systmp"]) == []
    assert len(running) == 1 and "postgres.dump.zst.enc" in next(iter(running.values()))
    # A leftover of the layout before the work area: an incomplete set holding only a .part file.
    legacy = env["dest"] / "20240101T000000Z-abcdef"
    legacy.mkdir()
    (legacy / "postgres.dump.zst.enc.part").write_bytes(b"x")

    res = CliRunner().invoke(backup_group, ["list", "--spec", env["spec"]])
    assert res.exit_code == 0, res.output
    assert res.stdout.startswith("no backup sets under")
    assert res.stderr.count("removed leftovers of an interrupted backup") == 2
    assert _entries(env["dest"]) == [".work"] and _entries(env["dest"] / ".work") == []


def test_created_set_is_private_whatever_the_umask(env, tmp_path):
    done = subprocess.run([sys.executable, "-c", "import os, sys; os.umask(0); from nova_pipeline.cli.backup import "
                           "backup_group; backup_group(sys.argv[1:])", "create", "--spec", env["spec"]],
                          cwd=tmp_path, env=env["child_env"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    set_dir = env["dest"] / done.stdout.strip().splitlines()[-1].rsplit("/", 1)[1]
    assert stat.S_IMODE(set_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((env["dest"] / ".work").stat().st_mode) == 0o700
    assert stat.S_IMODE(env["dest"].stat().st_mode) == 0o700
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in set_dir.iterdir()}
    assert {"manifest.json", "postgres.dump.zst.enc", "source.sqlite.zst.enc"} <= set(modes)
    assert set(modes.values()) == {0o600}
    assert _entries(env["dest"]) == [".work", set_dir.name] and _entries(env["dest"] / ".work") == []
    assert _entries(env["systmp"]) == [] and _plaintext_copies(env["dest"]) == []

    res = CliRunner().invoke(backup_group, ["verify", str(set_dir)])
    assert res.exit_code == 0, res.output
    assert stat.S_IMODE((set_dir / "verify.json").stat().st_mode) == 0o600


def test_wal_source_copy_stays_in_the_private_work_area(env, tmp_path):
    with sqlite3.connect(tmp_path / "source.sqlite") as conn:
        conn.execute("PRAGMA journal_mode=WAL")
    conn.close()
    res = CliRunner().invoke(backup_group, ["create", "--spec", env["spec"]])
    assert res.exit_code == 0, res.output
    assert _entries(env["dest"] / ".work") == [] and _plaintext_copies(env["dest"]) == []


def test_corrupt_source_is_one_line_and_leaves_nothing(env, tmp_path):
    (tmp_path / "source.sqlite").write_bytes(b"not a database" * 100)
    res = CliRunner().invoke(backup_group, ["create", "--spec", env["spec"]])
    assert res.exit_code == 2
    assert res.output.strip() == f"nova-pipeline: SQLite source {tmp_path / 'source.sqlite'}: file is not a database"
    assert _entries(env["dest"]) == [".work"] and _entries(env["dest"] / ".work") == []
