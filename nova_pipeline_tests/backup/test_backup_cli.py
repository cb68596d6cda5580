"""The `backup` command group and `rollback` command through click's runner."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from nova_pipeline_tests.backup.test_backup_helpers import KEY_HEX, make_spec, pg_fingerprint, populate_mongo, populate_postgres

from nova_pipeline.cli.backup import backup_group, rollback_command
from nova_pipeline.backup.sets import filesystem


@pytest.fixture
def env(tmp_path, pg_url, mongo_uri, monkeypatch):
    monkeypatch.setenv("NOVA_BACKUP_KEY", KEY_HEX)
    populate_postgres(pg_url)
    populate_mongo(mongo_uri)
    make_spec(tmp_path, pg_url, mongo_uri)
    return str(tmp_path / "spec.yaml")


def _run(cmd, args):
    return CliRunner().invoke(cmd, args, catch_exceptions=False)


def test_create_list_verify_restore(env, tmp_path, pg_url, make_pg_url):
    res = _run(backup_group, ["create", "--spec", env, "--label", "pre-migration"])
    assert res.exit_code == 0, res.output
    path = res.output.strip().splitlines()[-1]
    assert path.startswith(str(tmp_path / "backups")) and (tmp_path / "backups" / path.rsplit("/", 1)[1] / "manifest.json").exists()

    listing = _run(backup_group, ["list", "--spec", env]).output.splitlines()
    assert listing[0].split()[:2] == ["set", "created"]
    assert path.rsplit("/", 1)[1] in listing[1] and " yes " in listing[1] and "verified" in listing[1]

    assert _run(backup_group, ["verify", path]).exit_code == 0

    target = make_pg_url()
    res = _run(backup_group, ["restore", path, "--postgres-url", target])
    assert res.exit_code == 0, res.output
    assert pg_fingerprint(target) == pg_fingerprint(pg_url)


def test_verify_names_the_damaged_file(env):
    path = _run(backup_group, ["create", "--spec", env]).output.strip().splitlines()[-1]
    fs, root = filesystem(path)
    manifest = json.loads(fs.cat_file(f"{root}/manifest.json"))
    name = manifest["files"][0]["name"]
    data = bytearray(fs.cat_file(f"{root}/{name}"))
    data[-3] ^= 0xFF
    fs.pipe_file(f"{root}/{name}", bytes(data))
    res = _run(backup_group, ["verify", path])
    assert res.exit_code == 1
    assert res.output.strip() == f"DAMAGED sha256 mismatch (damaged file): {name}"


def test_bad_input_is_one_line_exit_2(env, monkeypatch, tmp_path):
    monkeypatch.delenv("NOVA_BACKUP_KEY")
    res = CliRunner().invoke(backup_group, ["create", "--spec", env])
    assert res.exit_code == 2
    assert res.output.strip().splitlines() == [
        "nova-pipeline: NOVA_BACKUP_KEY is not set: set it to 64 hex characters (python -c 'import secrets; "
        "print(secrets.token_hex(32))'), or pass --no-encrypt for an unencrypted set"]
    assert not (tmp_path / "backups").exists()

    res = CliRunner().invoke(backup_group, ["create", "--spec", env, "--no-encrypt",
                                            "--postgres-url", "postgresql://u:hunter2@127.0.0.1:1/db"])
    assert res.exit_code == 2 and "hunter2" not in res.output
    assert res.output.startswith("nova-pipeline: PostgreSQL unreachable at postgresql://u:***@127.0.0.1:1/db")
    assert [p.name for p in (tmp_path / "backups").iterdir()] == [".work"]  # no set, no work files
    assert list((tmp_path / "backups" / ".work").iterdir()) == []

    res = CliRunner().invoke(backup_group, ["verify", str(tmp_path / "nope")])
    assert res.exit_code == 2 and "not a complete backup set" in res.output


def test_rollback_command(env, tmp_path, pg_url):
    before = pg_fingerprint(pg_url)
    assert _run(backup_group, ["create", "--spec", env, "--label", "pre-migration"]).exit_code == 0
    import psycopg
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DROP TABLE audit.events; CREATE TABLE core.new_table (x int)")
    res = _run(rollback_command, ["--spec", env, "--reason", "bad deploy"])
    assert res.exit_code == 0, res.output
    assert res.output.splitlines()[0].startswith("restored ")
    assert pg_fingerprint(pg_url) == before
    assert json.loads((tmp_path / "reports" / "history.json").read_text())[0]["reason"] == "bad deploy"
