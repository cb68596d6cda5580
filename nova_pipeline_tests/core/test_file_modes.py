"""Owner-only files: whatever the umask, what a migration writes locally is readable by its owner alone."""

import os
import sqlite3
import stat
import subprocess
import sys

import pytest
import yaml
from click.testing import CliRunner

from nova_pipeline.cli.main import main
from nova_pipeline.core.file_modes import owner_only_umask, private_dir, restrict_tree


@pytest.fixture
def loose_umask():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _open_to_others(root) -> list[str]:
    """Paths under root (root included) that group or others may read, write or enter."""
    found = [root, *root.rglob("*")]
    return [f"{oct(stat.S_IMODE(p.lstat().st_mode))} {p}" for p in found
            if not p.is_symlink() and stat.S_IMODE(p.lstat().st_mode) & 0o077]


def test_private_dir_and_restrict_tree(tmp_path, loose_umask):
    made = private_dir(tmp_path / "a" / "b")
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == stat.S_IMODE(made.stat().st_mode) == 0o700
    old = tmp_path / "old"
    (old / "raw").mkdir(parents=True)
    (old / "raw" / "part.parquet").write_bytes(b"x")
    os.chmod(old / "raw" / "part.parquet", 0o664)
    restrict_tree(old)
    assert _open_to_others(old) == []
    assert stat.S_IMODE((old / "raw" / "part.parquet").stat().st_mode) == 0o600


def test_owner_only_umask_adds_group_and_other_bits(loose_umask):
    os.umask(0o027)
    owner_only_umask()
    assert os.umask(0o022) == 0o077


def _source(path):
    with sqlite3.connect(path) as conn:
        conn.executescript("""
            CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, age INTEGER);
            INSERT INTO users VALUES (1, 'ada@example.org', 36), (2, 'grace@example.org', 'unknown');
        """)
    conn.close()


def test_cli_migrate_under_a_loose_umask_writes_only_owner_only_files(tmp_path, pg_url, loose_umask):
    _source(tmp_path / "app.sqlite")
    spec = tmp_path / "spec.yaml"
    init = CliRunner().invoke(main, ["init", "--source", str(tmp_path / "app.sqlite"), "--out", str(spec)])
    assert init.exit_code == 0, init.output
    os.umask(0o022)  # the CLI call above tightened this process's umask
    data = yaml.safe_load(spec.read_text())
    data["tables"]["users"]["columns"]["age"]["type"] = "bigint"  # 'unknown' is quarantined
    data.update(keep_staging=True, max_quarantined_rows=5, backup={"dest": "backups"})
    spec.write_text(yaml.safe_dump(data))
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "NOVA_BACKUP_KEY": "c3" * 32}
    done = subprocess.run([sys.executable, "-c", "import os; os.umask(0o022); from nova_pipeline.cli.main import entry; "
                           "entry()", "migrate", "--spec", str(spec), "--postgres-url", pg_url],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    staging = tmp_path / "data" / "staging"
    (area,) = staging.iterdir()
    assert {p.name for p in area.iterdir()} >= {"raw", "clean", "quarantine", "snapshot"}
    assert (area / "snapshot" / "source.sqlite").exists()
    backups = tmp_path / "backups"
    assert any(backups.iterdir())
    for root in (staging, tmp_path / "data" / "reports", tmp_path / "dagster", backups):
        assert _open_to_others(root) == [], root
