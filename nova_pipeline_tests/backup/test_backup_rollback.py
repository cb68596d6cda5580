"""Rollback returns the targets to the last pre-migration set and records why."""

from __future__ import annotations

import json

import psycopg
import pytest
from nova_pipeline_tests.backup.test_backup_helpers import KEY_HEX, MONGO_DB, make_spec, mongo_fingerprint, pg_fingerprint, populate_postgres

from nova_pipeline.backup import BackupError, create_backup, list_sets, restore, rollback
from nova_pipeline.core.connections import mongo_client


def _migrate_like_change(pg_url: str, mongo_uri: str) -> None:
    populate_postgres(pg_url)  # creates core, audit and nova_meta with data
    mongo_client(mongo_uri)[MONGO_DB].logs.insert_many([{"_id": i} for i in range(5)])


def test_rollback_restores_pre_migration_content(tmp_path, pg_url, make_pg_url, mongo_uri, monkeypatch):
    monkeypatch.setenv("NOVA_BACKUP_KEY", KEY_HEX)
    spec = make_spec(tmp_path, pg_url, mongo_uri)
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.app_state (id int PRIMARY KEY, v text); INSERT INTO public.app_state VALUES (1, 'a')")
    mongo_client(mongo_uri)[MONGO_DB].settings.insert_one({"_id": "s", "v": 1})
    before_pg, before_mongo = pg_fingerprint(pg_url), mongo_fingerprint(mongo_uri)
    pre = create_backup(spec, label="pre-migration")
    create_backup(spec)  # a newer ordinary set is not a rollback target

    _migrate_like_change(pg_url, mongo_uri)
    after_pg = pg_fingerprint(pg_url)
    assert after_pg != before_pg and "core.users" in after_pg

    entry = rollback(spec, pg_url, mongo_uri, reason="row counts wrong after migration")
    assert pg_fingerprint(pg_url) == before_pg
    assert mongo_fingerprint(mongo_uri) == before_mongo
    assert entry["restored_set"] == pre.location

    history = json.loads((tmp_path / "reports" / "history.json").read_text())
    assert [h["reason"] for h in history] == ["row counts wrong after migration"]
    assert history[0]["safety_set"] == entry["safety_set"] and set(history[0]) >= {"time", "restored_set"}

    safety = next(s for s in list_sets(str(tmp_path / "backups")) if s.location == entry["safety_set"])
    assert safety.manifest["label"] == "pre-rollback" and not safety.pre_migration
    scratch = make_pg_url()
    restore(safety.location, scratch)
    assert pg_fingerprint(scratch)["core.users"] == after_pg["core.users"]


def test_rollback_without_pre_migration_set_changes_nothing(tmp_path, pg_url, mongo_uri, monkeypatch):
    monkeypatch.setenv("NOVA_BACKUP_KEY", KEY_HEX)
    spec = make_spec(tmp_path, pg_url, mongo_uri)
    create_backup(spec)
    with pytest.raises(BackupError, match="no pre-migration backup set under"):
        rollback(spec, pg_url, mongo_uri, reason="x")
    assert len(list_sets(str(tmp_path / "backups"))) == 1
    assert not (tmp_path / "reports" / "history.json").exists()
