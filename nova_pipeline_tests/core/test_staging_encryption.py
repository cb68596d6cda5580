"""`staging_encryption: true`: staged Parquet is encrypted (modular encryption) and read back with the same key."""

import sqlite3

import pyarrow as pa
import pytest
from click.testing import CliRunner

from nova_pipeline.cli.main import main
from nova_pipeline.core.staging import Staging
from nova_pipeline.core.staging_crypto import StagingKeyError
from nova_pipeline_tests.cli_runs import init_and_migrate

KEY_A, KEY_B = "a1" * 32, "b2" * 32
TABLE = pa.table({"email": ["ada@example.org", "grace@example.org"], "hash": [b"$2b$12$secret", b"$2b$12$other"],
                  "_nova_rowid": pa.array([1, 2], pa.int64())})


@pytest.fixture
def key(monkeypatch):
    monkeypatch.delenv("NOVA_BACKUP_KEY", raising=False)
    monkeypatch.setenv("NOVA_STAGING_KEY", KEY_A)


def test_encrypted_staging_round_trip(tmp_path, key):
    staging = Staging(str(tmp_path / "area"), encrypted=True)
    assert staging.write_parts("clean", "users", TABLE.schema, TABLE.to_batches()) == (2, 1)
    (path,) = staging.files("clean", "users")
    data = open(path, "rb").read()
    assert data[:4] == data[-4:] == b"PARE"  # encrypted footer
    assert b"ada@example.org" not in data and b"secret" not in data and b"email" not in data
    assert pa.Table.from_batches(list(staging.read_batches("clean", "users"))).equals(TABLE)
    assert staging.row_count("clean", "users") == 2 and staging.schema("clean", "users") == TABLE.schema
    assert staging.dataset([path]).to_table().equals(TABLE)
    # A reader that does not know the area is encrypted (validation rebuilds Staging from its URI) decrypts too.
    assert Staging(staging.uri).row_count("clean", "users") == 2


def test_key_falls_back_to_nova_backup_key(tmp_path, monkeypatch):
    monkeypatch.delenv("NOVA_STAGING_KEY", raising=False)
    monkeypatch.setenv("NOVA_BACKUP_KEY", KEY_B)
    staging = Staging(str(tmp_path / "area"), encrypted=True)
    staging.write_parts("raw", "users", TABLE.schema, TABLE.to_batches())
    monkeypatch.setenv("NOVA_STAGING_KEY", KEY_B)
    assert staging.row_count("raw", "users") == 2


def test_wrong_or_missing_key_is_one_line(tmp_path, key, monkeypatch):
    staging = Staging(str(tmp_path / "area"), encrypted=True)
    staging.write_parts("clean", "users", TABLE.schema, TABLE.to_batches())
    (path,) = staging.files("clean", "users")
    monkeypatch.setenv("NOVA_STAGING_KEY", KEY_B)
    with pytest.raises(StagingKeyError, match=f"^{path}: encrypted staged file: wrong key"):
        list(staging.read_batches("clean", "users"))
    with pytest.raises(StagingKeyError, match="wrong key"):
        staging.check_key()
    monkeypatch.delenv("NOVA_STAGING_KEY")
    with pytest.raises(StagingKeyError, match="set NOVA_STAGING_KEY"):
        staging.row_count("clean", "users")


def test_migrate_with_encrypted_staging(tmp_path, pg_url, key, monkeypatch):
    db = tmp_path / "app.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT, born DATETIME);"
                           "INSERT INTO users VALUES (1, 'ada@example.org', '1815-12-10'), (2, 'grace@example.org', 'not a date');")
    conn.close()

    def encrypted(data):
        data.update(staging_encryption=True, keep_staging=True)

    run = init_and_migrate(tmp_path, db, pg_url, edit=encrypted)
    assert run.res.exit_code == 0, run.res.output
    staged = list((tmp_path / "data" / "staging").rglob("*.parquet"))
    assert {p.parent.parent.name for p in staged} >= {"raw", "clean"}
    for p in staged:
        data = p.read_bytes()
        assert data[:4] == b"PARE" and b"ada@example.org" not in data and b"not a date" not in data

    monkeypatch.delenv("NOVA_STAGING_KEY")
    res = CliRunner().invoke(main, ["migrate", "--spec", str(run.spec_path), "--postgres-url", pg_url, "--no-backup"])
    assert res.exit_code == 2
    assert res.stderr.strip().splitlines() == [
        "nova-pipeline: encrypted staging needs a key: set NOVA_STAGING_KEY (or NOVA_BACKUP_KEY)"]
    monkeypatch.setenv("NOVA_STAGING_KEY", KEY_B)
    res = CliRunner().invoke(main, ["migrate", "--spec", str(run.spec_path), "--postgres-url", pg_url, "--no-backup"])
    assert res.exit_code == 2 and len(res.stderr.strip().splitlines()) == 1
    assert "encrypted staged file: wrong key" in res.stderr
