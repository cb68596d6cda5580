"""create → verify → restore round trips, and detection of damaged sets."""

from __future__ import annotations

import json

import psycopg
import pytest
from nova_pipeline_tests.backup.test_backup_helpers import (KEY_HEX, OTHER_KEY_HEX, make_spec, mongo_fingerprint, pg_fingerprint,
                                 populate_mongo, populate_postgres)

from nova_pipeline.backup import BackupKeyError, create_backup, list_sets, restore, verify_set
from nova_pipeline.backup import pgtools
from nova_pipeline.backup.crypto import iter_plain
from nova_pipeline.backup.crypto import key_from_env as load_key
from nova_pipeline.backup.errors import SealError, WrongKeyError
from nova_pipeline.backup.sets import filesystem


@pytest.fixture
def source(tmp_path, pg_url, mongo_uri, monkeypatch):
    monkeypatch.setenv("NOVA_BACKUP_KEY", KEY_HEX)
    populate_postgres(pg_url)
    populate_mongo(mongo_uri)
    return make_spec(tmp_path, pg_url, mongo_uri)


def test_create_verify_restore_into_new_database(source, pg_url, make_pg_url, mongo_uri, tmp_path):
    backup = create_backup(source, label="pre-migration")
    m = backup.manifest
    assert backup.location.startswith(str(tmp_path / "backups"))
    assert m["pre_migration"] is True and backup.state == "verified"
    assert m["sources"]["postgres"]["schemas_dumped"] == ["core", "audit", "nova_meta"]
    assert {f["kind"] for f in m["files"]} == {"postgres", "mongo", "sqlite"}
    assert m["versions"]["postgres_server"].startswith("16") and "16." in m["versions"]["pg_dump"]
    assert m["versions"]["mongodb"] == "mongomock"
    assert all(f["name"].endswith(".zst.enc") and len(f["stored_sha256"]) == 64 for f in m["files"])
    assert KEY_HEX not in json.dumps(m)

    assert verify_set(backup.location)["ok"] is True

    target, target_mongo = make_pg_url(), f"{mongo_uri}-restored"
    done = restore(backup.location, target, target_mongo)
    assert done["mongo"]["documents"] == {"logs": 150, "metrics": 1}
    expected = pg_fingerprint(pg_url)
    assert expected["core.users"][0] == 201 and expected["audit.events"][0] == 300
    assert pg_fingerprint(target) == expected
    assert mongo_fingerprint(target_mongo) == mongo_fingerprint(mongo_uri)


def test_restore_replaces_changes_made_after_the_backup(source, pg_url, mongo_uri):
    before_pg, before_mongo = pg_fingerprint(pg_url), mongo_fingerprint(mongo_uri)
    backup = create_backup(source)
    import psycopg

    from nova_pipeline.core.connections import mongo_client
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("DELETE FROM audit.events WHERE id < 10; CREATE TABLE core.extra (x int); UPDATE core.users SET name = 'x'")
    mongo_client(mongo_uri)["nova_logs"].logs.delete_many({"level": "error"})
    mongo_client(mongo_uri)["nova_logs"].newcoll.insert_one({"a": 1})
    restore(backup.location, pg_url, mongo_uri)
    assert pg_fingerprint(pg_url) == before_pg
    assert mongo_fingerprint(mongo_uri) == before_mongo


def _file(backup, kind):
    return next(f["name"] for f in backup.manifest["files"] if f["kind"] == kind)


def test_flipped_byte_is_detected_and_named(source):
    backup = create_backup(source)
    name = _file(backup, "postgres")
    fs, path = filesystem(backup.location)
    data = bytearray(fs.cat_file(f"{path}/{name}"))
    data[len(data) // 2] ^= 0x01
    fs.pipe_file(f"{path}/{name}", bytes(data))
    result = verify_set(backup.location)
    assert result["ok"] is False
    assert result["problems"] == [f"sha256 mismatch (damaged file): {name}"]
    assert list_sets(str(source.resolve("backups")))[0].state == "failed"


def test_truncated_and_missing_files_are_named(source):
    backup = create_backup(source)
    fs, path = filesystem(backup.location)
    trunc, gone = _file(backup, "sqlite"), _file(backup, "postgres")
    fs.pipe_file(f"{path}/{trunc}", fs.cat_file(f"{path}/{trunc}")[:-40])
    fs.rm(f"{path}/{gone}")
    problems = verify_set(backup.location)["problems"]
    assert len(problems) == 2
    assert problems[0] == f"missing file: {gone}"
    assert problems[1].startswith("size mismatch") and problems[1].endswith(trunc)


def test_wrong_key_is_named_and_does_not_fail_the_set(source, pg_url, monkeypatch):
    backup = create_backup(source)
    monkeypatch.setenv("NOVA_BACKUP_KEY", OTHER_KEY_HEX)
    with pytest.raises(WrongKeyError, match=f"wrong NOVA_BACKUP_KEY: set {backup.set_id} was written with key id"):
        verify_set(backup.location)
    with pytest.raises(WrongKeyError):
        restore(backup.location, pg_url)
    assert list_sets(str(source.resolve("backups")))[0].state == "verified"


def test_missing_key_refuses_unless_no_encrypt(source, monkeypatch, tmp_path):
    monkeypatch.delenv("NOVA_BACKUP_KEY")
    with pytest.raises(BackupKeyError, match="NOVA_BACKUP_KEY is not set"):
        create_backup(source)
    assert not (tmp_path / "backups").exists()
    plain = create_backup(source, no_encrypt=True)
    assert plain.manifest["encryption"] is None
    assert all(f["name"].endswith(".zst") for f in plain.manifest["files"])
    assert verify_set(plain.location)["ok"] is True


def test_fsspec_destination_and_incomplete_sets_ignored(source, mongo_uri):
    backup = create_backup(source, dest="memory://nova-backups-test")
    assert backup.location.startswith("memory://")
    assert verify_set(backup.location)["ok"] is True
    fs, _ = filesystem("memory://nova-backups-test")
    fs.makedirs("/nova-backups-test/20990101T000000Z-abcdef", exist_ok=True)
    fs.pipe_file("/nova-backups-test/20990101T000000Z-abcdef/postgres.dump.zst.enc.part", b"x")
    assert [s.set_id for s in list_sets("memory://nova-backups-test")] == [backup.set_id]
    fs.rm("/nova-backups-test", recursive=True)


def test_dump_stream_failing_midway_leaves_the_target_unchanged(source, pg_url, make_pg_url):
    backup = create_backup(source)
    target = make_pg_url()
    populate_postgres(target)
    with psycopg.connect(target, autocommit=True) as conn:
        conn.execute("UPDATE core.users SET name = 'changed'")
    before = pg_fingerprint(target)
    fs, path = filesystem(backup.location)
    name = _file(backup, "postgres")
    plain = b"".join(iter_plain(fs.open(f"{path}/{name}", "rb"), load_key(), name))

    def broken_stream():
        yield plain[:len(plain) // 2]
        raise SealError(f"wrong NOVA_BACKUP_KEY or damaged file: {name}")

    major, _ = pgtools.server_info(target)
    with pytest.raises(SealError, match="damaged file"):
        pgtools.pg_restore(broken_stream(), target, ["core", "audit", "nova_meta"], pgtools.tool_dir(major))
    assert pg_fingerprint(target) == before
