"""The sealed manifest: edits are named and refused, a wrong key is said as such, unencrypted and older sets."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from nova_pipeline_tests.backup.test_backup_helpers import KEY_HEX, OTHER_KEY_HEX, make_spec, pg_fingerprint, populate_postgres

from nova_pipeline.backup import create_backup, last_pre_migration
from nova_pipeline.cli.backup import backup_group, rollback_command
from nova_pipeline.backup.errors import BackupError, VerificationError


@pytest.fixture
def spec(tmp_path, pg_url, monkeypatch):
    monkeypatch.setenv("NOVA_BACKUP_KEY", KEY_HEX)
    populate_postgres(pg_url)
    return make_spec(tmp_path, pg_url, None)


def _run(cmd, args):
    return CliRunner().invoke(cmd, args, catch_exceptions=False)


def _edit(location: str, **changes) -> None:
    path = f"{location}/manifest.json"
    with open(path) as f:
        manifest = json.load(f)
    for field, value in changes.items():
        if value is _DROP:
            manifest.pop(field)
        else:
            manifest[field] = value
    with open(path, "w") as f:
        json.dump(manifest, f, indent=2)


_DROP = object()


@pytest.mark.parametrize("field, value", [
    ("pre_migration", True), ("label", "pre-migration"), ("created_at", "2031-01-01T00:00:00+00:00"),
])
def test_edited_manifest_field_is_named_by_verify_and_restore(spec, make_pg_url, field, value):
    backup = create_backup(spec, label="nightly")
    _edit(backup.location, **{field: value})
    res = _run(backup_group, ["verify", backup.location])
    assert res.exit_code == 1
    assert res.output.strip() == f"DAMAGED manifest fields changed after the set was written: {field}"
    target = make_pg_url()
    res = CliRunner().invoke(backup_group, ["restore", backup.location, "--postgres-url", target])
    assert res.exit_code == 1
    assert res.output.strip() == (f"nova-pipeline: set {backup.set_id} failed verification, nothing restored: "
                                  f"manifest fields changed after the set was written: {field}")
    assert pg_fingerprint(target)["indexes"] == ()


def test_edited_format_or_removed_seal_is_refused(spec):
    backup = create_backup(spec)
    _edit(backup.location, format="nova-backup/1")
    res = _run(backup_group, ["verify", backup.location, "--accept-unsealed"])
    assert (res.exit_code, res.output.strip()) == (1, "DAMAGED manifest fields changed after the set was written: format")

    other = create_backup(spec)
    _edit(other.location, seal=_DROP, label="x")
    res = _run(backup_group, ["verify", other.location])
    assert res.exit_code == 1
    assert res.output.strip() == "DAMAGED manifest seal removed (manifest.json was edited after the set was written)"


def test_wrong_key_is_one_line_and_leaves_the_set_verified(spec, monkeypatch):
    backup = create_backup(spec)
    verified = _run(backup_group, ["verify", backup.location])
    assert verified.output.strip() == f"ok: {backup.location} (manifest authenticated)"
    monkeypatch.setenv("NOVA_BACKUP_KEY", OTHER_KEY_HEX)
    res = CliRunner().invoke(backup_group, ["verify", backup.location])
    assert res.exit_code == 2
    assert res.output.splitlines() == [
        f"nova-pipeline: wrong NOVA_BACKUP_KEY: set {backup.set_id} was written with key id "
        f"{backup.manifest['seal']['key_id']}, yours is {res.output.split('yours is ')[1].split(';')[0]}; "
        "nothing checked or recorded"]
    assert json.loads(open(f"{backup.location}/verify.json").read())["ok"] is True
    listing = _run(backup_group, ["list", "--spec", spec.spec_path]).output.splitlines()
    assert listing[1].split()[7:10] == ["verified", "other", "key"]


def test_edited_pre_migration_flags_stop_the_rollback(spec, pg_url):
    dest = str(spec.resolve("backups"))
    first = create_backup(spec, label="pre-migration")
    later = create_backup(spec, label="nightly")
    assert last_pre_migration(dest).set_id == first.set_id
    _edit(later.location, pre_migration=True)
    with pytest.raises(VerificationError, match=f"set {later.set_id}: manifest fields changed after the set was "
                                                "written: pre_migration; refusing to choose a rollback target"):
        last_pre_migration(dest)
    _edit(later.location, pre_migration=False)
    _edit(first.location, pre_migration=False)
    before = pg_fingerprint(pg_url)
    res = CliRunner().invoke(rollback_command, ["--spec", spec.spec_path, "--reason", "test"])
    assert res.exit_code == 1 and f"set {first.set_id}: manifest fields changed" in res.output
    assert pg_fingerprint(pg_url) == before


def test_unencrypted_set_is_checksummed_not_authenticated(spec, monkeypatch):
    monkeypatch.delenv("NOVA_BACKUP_KEY")
    plain = create_backup(spec, no_encrypt=True)
    assert plain.manifest["seal"] is None
    res = _run(backup_group, ["verify", plain.location])
    assert res.output.strip() == f"ok: {plain.location} (unencrypted set: checksummed, not authenticated)"


def test_encrypted_set_edited_to_look_unencrypted_is_refused(spec):
    backup = create_backup(spec)
    _edit(backup.location, encryption=None, seal=None)
    res = _run(backup_group, ["verify", backup.location])
    assert res.exit_code == 1
    assert res.output.startswith("DAMAGED manifest says the set is unencrypted but ")
    assert "is encrypted (manifest.json was edited after the set was written)" in res.output


def test_set_from_before_the_seal_needs_accept_unsealed(spec, pg_url, make_pg_url):
    backup = create_backup(spec, label="pre-migration")
    _edit(backup.location, format="nova-backup/1", seal=_DROP)  # what earlier versions wrote
    res = CliRunner().invoke(backup_group, ["verify", backup.location])
    assert res.exit_code == 2
    assert res.output.strip() == (f"nova-pipeline: set {backup.set_id} was written before manifests were sealed, so its "
                                  "label, dates and pre-migration flag cannot be authenticated; pass --accept-unsealed "
                                  "to use it anyway")
    res = _run(backup_group, ["verify", backup.location, "--accept-unsealed"])
    assert res.exit_code == 0 and "manifest NOT sealed" in res.output
    target = make_pg_url()
    res = _run(backup_group, ["restore", backup.location, "--postgres-url", target, "--accept-unsealed"])
    assert res.exit_code == 0, res.output
    assert res.output.startswith("note: manifest NOT sealed")
    assert pg_fingerprint(target) == pg_fingerprint(pg_url)

    with pytest.raises(BackupError, match="1 set\\(s\\) from before manifests were sealed .* need --accept-unsealed"):
        last_pre_migration(str(spec.resolve("backups")))
    res = _run(rollback_command, ["--spec", spec.spec_path, "--reason", "old set", "--accept-unsealed"])
    assert res.exit_code == 0, res.output
