"""Issue 19 item 4: `backup create|list|verify|restore|prune` and `rollback` take --json (an object or array on
stdout); errors stay one line on stderr with exit 2."""

from __future__ import annotations

import json

from click.testing import CliRunner
from nova_pipeline_tests.backup.test_backup_cli import env  # noqa: F401  (fixture: a spec over populated targets)
from nova_pipeline_tests.backup.test_backup_helpers import pg_fingerprint

from nova_pipeline.cli.main import main


def _json(*args, code=0):
    res = CliRunner().invoke(main, [*args, "--json"])
    assert res.exit_code == code, res.output
    return json.loads(res.stdout)


def test_every_backup_command_prints_json(env, tmp_path, pg_url, make_pg_url):
    created = _json("backup", "create", "--spec", env, "--label", "pre-migration")
    assert created["set"].startswith(str(tmp_path / "backups")) and created["pre_migration"] is True
    assert created["encrypted"] is True and created["state"] == "verified" and created["files"] >= 2

    listed = _json("backup", "list", "--spec", env)
    assert isinstance(listed, list) and [s["set"] for s in listed] == [created["set"]]
    assert listed[0]["manifest"] == "sealed" and listed[0]["stored_size"] > 0

    verified = _json("backup", "verify", created["set"])
    assert verified["ok"] is True and verified["problems"] == [] and verified["set"] == created["set"]

    target = make_pg_url()
    restored = _json("backup", "restore", created["set"], "--postgres-url", target)
    assert restored["set"] == created["set"] and "postgres" in restored
    assert pg_fingerprint(target) == pg_fingerprint(pg_url)

    pruned = _json("backup", "prune", "--spec", env, "--dry-run")
    assert pruned == {"dry_run": True, "deleted": []}

    rolled = _json("rollback", "--spec", env, "--reason", "json test")
    assert rolled["restored_set"] == created["set"] and rolled["safety_set"] and rolled["reason"] == "json test"
    assert [s["label"] for s in _json("backup", "list", "--spec", env)] == ["pre-migration", "pre-rollback"]


def test_list_json_of_no_sets_is_an_empty_array(env):
    assert _json("backup", "list", "--spec", env) == []


def test_json_errors_stay_one_line_on_stderr(env, tmp_path, monkeypatch):
    res = CliRunner().invoke(main, ["backup", "verify", str(tmp_path / "nope"), "--json"])
    assert res.exit_code == 2 and res.stdout == "" and len(res.stderr.strip().splitlines()) == 1
    monkeypatch.delenv("NOVA_BACKUP_KEY")
    res = CliRunner().invoke(main, ["backup", "create", "--spec", env, "--json"])
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.strip().splitlines() == [res.stderr.strip()] and "NOVA_BACKUP_KEY" in res.stderr


def test_verify_json_of_a_damaged_set_exits_1(env):
    path = _json("backup", "create", "--spec", env)["set"]
    manifest = json.loads(open(f"{path}/manifest.json").read())
    name = manifest["files"][0]["name"]
    data = bytearray(open(f"{path}/{name}", "rb").read())
    data[-3] ^= 0xFF
    open(f"{path}/{name}", "wb").write(bytes(data))
    out = _json("backup", "verify", path, code=1)
    assert out["ok"] is False and name in out["problems"][0]
