"""The same loads and checks as test_mongo_load.py / test_mongo_setup.py, against a real MongoDB server.

Runs when NOVA_TEST_MONGO_URI names a server (SecantusDB or `docker compose up mongo`, see README: MongoDB);
skips without it, except under NOVA_REQUIRE_MONGO_SERVER=1 (CI), where it fails. Each test uses its own
database (fixture `mongo_server` in conftest.py), dropped afterwards. Here the server shows what mongomock
cannot: validators, time-series and TTL options, the 16 MiB limit, bulk-write errors, real index listings.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

import bson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from nova_pipeline_tests.validate import test_validation_mongo_checks as mongomock_checks
import yaml
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from click.testing import CliRunner
from pymongo.errors import DocumentTooLarge, OperationFailure, WriteError
from nova_pipeline_tests.backup.test_backup_helpers import KEY_HEX
from nova_pipeline_tests.load.test_mongo_documents import T0, mission_spec, write_clean, write_mission_tables
from nova_pipeline_tests.load.test_mongo_load import (
    TELEMETRY, check_full_load_is_idempotent, check_oversized_parent_load, check_timeseries_load_is_idempotent,
    MISSION_TABLES, check_window_load_replaces_only_its_window, contents, copy_clean_to_raw, failed_checks,
)
from nova_pipeline_tests.load.test_mongo_setup import AUDIT
from nova_pipeline_tests.load.test_mongo_setup import TELEMETRY as SETUP_TELEMETRY
from nova_pipeline_tests.load.test_mongo_setup import spec_for as setup_spec_for
from nova_pipeline_tests.validate.test_validation_mongo_checks import LOGINS, USERS
from nova_pipeline_tests.validate.test_validation_mongo_checks import SPEC as CHECK_SPEC
from nova_pipeline_tests.validate.test_validation_mongo_checks import documents as check_documents

from nova_pipeline.load import mongo_load
from nova_pipeline.backup import create_backup, restore, rollback
from nova_pipeline.cli.main import main
from nova_pipeline.core.connections import mongo_client
from nova_pipeline.load.mongo_documents import MAX_DOCUMENT_BYTES, UNLOADABLE_FILE, iter_documents
from nova_pipeline.load.mongo_load import TMP_SUFFIX, load_collection
from nova_pipeline.load.mongo_setup import json_schema, setup_collections
from nova_pipeline.core.spec import parse_spec
from nova_pipeline.core.staging import Staging
from nova_pipeline.core import results as r
from nova_pipeline.validate.mongo_checks import mongo_checks
from nova_pipeline.validate.source_facts import source_facts

pytestmark = pytest.mark.mongo_server
SESSIONS = {"target": "mongo", "primary_key": ["id"], "ttl": {"field": "last_seen", "days": 3},
            "columns": {"id": {"type": "bigint"}, "last_seen": {"type": "timestamptz"}}}


@pytest.mark.parametrize("strategy", ["rename", "upsert"])
def test_full_load_is_idempotent(mongo_server, tmp_path, strategy):
    check_full_load_is_idempotent(*mongo_server, tmp_path, strategy)


def test_window_load_replaces_only_its_window(mongo_server, tmp_path):
    check_window_load_replaces_only_its_window(*mongo_server, tmp_path)


def test_timeseries_load_is_idempotent(mongo_server, tmp_path):
    check_timeseries_load_is_idempotent(*mongo_server, tmp_path)


@pytest.mark.parametrize("mode", ["quarantine", "split"])
def test_oversized_parent_load(mongo_server, tmp_path, mode):
    check_oversized_parent_load(*mongo_server, tmp_path, mode)


def test_validator_and_timeseries_are_applied(mongo_server, tmp_path):
    uri, database = mongo_server
    spec = mission_spec(uri, tmp_path, database=database, telemetry=TELEMETRY)
    db = mongo_client(uri)[database]
    actions = setup_collections(db, spec)
    options = db["missions"].options()
    assert options["validator"] == json_schema(spec, "missions")
    assert (options["validationLevel"], options["validationAction"]) == ("strict", "error")
    with pytest.raises(WriteError, match="Document failed validation"):
        db["missions"].insert_one({"_id": 1, "name": 42})
    version = tuple(mongo_client(uri).server_info()["versionArray"][:2])
    telemetry = db["telemetry"].options()
    if version >= (5, 0):
        assert telemetry["timeseries"]["timeField"] == "recorded_at" and telemetry["expireAfterSeconds"] == 7 * 86400
    else:
        assert any("time-series not supported" in a for a in actions)
    assert all("unchanged" in a for a in setup_collections(db, spec) if "index" in a or "validator" in a)


def _mission_load(uri: str, database: str, tmp_path, *, raw: bool = True, **tables):
    """The mission tables staged (raw = clean, as after a transform without rejects) and their spec."""
    staging = Staging(str(tmp_path / "staging"))
    write_mission_tables(staging)
    if raw:
        copy_clean_to_raw(staging, *MISSION_TABLES)
    spec = mission_spec(uri, tmp_path / "staging", database=database, **tables)
    return spec, staging, mongo_client(uri)[database]


def _checks(db, spec, staging, table) -> dict[str, r.CheckResult]:
    return {c.check: c for c in mongo_checks(db, spec, table, source_facts(spec, table, staging))}


def test_validator_rejects_what_the_spec_forbids(mongo_server, tmp_path):
    spec, _, db = _mission_load(*mongo_server, tmp_path)
    setup_collections(db, spec)
    good = {"_id": Int64(9), "name": "Vostok", "commander_id": None, "started_at": None,
            "drones": [{"id": 1, "mission_id": Int64(9), "seq": 1, "payload": "p", "events": []}], "brief": None}
    db["missions"].insert_one(good)
    forbidden = [{"name": 42}, {"name": None}, {"name": "x", "_id": "9"}, {"commander_id": Int64(2**40)},
                 {"started_at": "2024-01-01"}, {"drones": [{"id": "1"}]}, {"drones": [{"seq": 1}]},
                 {"drones": {"id": 1}}, {"brief": {"summary": "no mission_id"}}, {"brief": "text"}]
    for i, change in enumerate(forbidden):
        doc = {**good, "_id": Int64(100 + i), "name": f"m{i}", **change}
        with pytest.raises(WriteError) as err:
            db["missions"].insert_one(doc)
        assert err.value.code == 121, change
    del good["name"]
    with pytest.raises(WriteError, match="Document failed validation"):
        db["missions"].insert_one({**good, "_id": Int64(200)})


def test_every_migrated_document_passes_and_validator_compliance_really_runs(mongo_server, tmp_path):
    spec, staging, db = _mission_load(*mongo_server, tmp_path)
    res = load_collection(db, spec, "missions", staging)
    assert (res.documents, res.rejected) == (3, 0)
    assert failed_checks(db, spec, staging, MISSION_TABLES) == {}
    for table in MISSION_TABLES:
        results = _checks(db, spec, staging, table)
        assert not any("not verified" in c.detail for c in results.values()), table
        if table == "missions":
            assert results[r.VALIDATOR_COMPLIANCE].passed
            assert results[r.VALIDATOR_COMPLIANCE].detail == "every document of missions matches its validator"
            assert results[r.DOCUMENT_COUNT].passed and results[r.COLUMN_AGGREGATES].passed
    db["missions"].insert_one({"_id": Int64(7), "name": 7}, bypass_document_validation=True)
    results = _checks(db, spec, staging, "missions")
    check = results[r.VALIDATOR_COMPLIANCE]
    assert not check.passed and "1 document(s) of missions violate its validator: _id=7" in check.detail
    assert "name: count 3 → 4, min 'Apollo' → 'int 7'" in results[r.COLUMN_AGGREGATES].detail


def test_numeric_aggregates_are_compared_on_a_real_server(mongo_server, tmp_path):
    """mongomock cannot order Decimal128, so numeric min/max are only compared on a server."""
    uri, database = mongo_server
    spec, staging = _check_staging(uri, database, tmp_path)
    db = mongo_client(uri)[database]
    assert load_collection(db, spec, "users", staging).documents == 3
    for table in ("users", "logins"):
        results = _checks(db, spec, staging, table)
        assert all(c.passed for c in results.values()), [c.detail for c in results.values() if not c.passed]
        assert "not verified" not in results[r.COLUMN_AGGREGATES].detail
    db["users"].update_one({"_id": 1}, {"$set": {"balance": Decimal128("99.00")}})
    assert "balance: max '10.5' → '99'" in _checks(db, spec, staging, "users")[
        r.COLUMN_AGGREGATES].detail


@pytest.mark.parametrize("strategy", ["rename", "upsert"])
def test_server_rejections_become_quarantine_rows_with_key_and_reason(mongo_server, tmp_path, strategy):
    spec, staging, db = _mission_load(*mongo_server, tmp_path)
    assert load_collection(db, spec, "missions", staging, strategy=strategy).rejected == 0
    staging.clear("clean", "missions")  # mission 3 lost its name (NOT NULL), mission 4 repeats a unique name
    write_clean(staging, "missions", {
        "id": pa.array([1, 2, 3, 4], pa.int64()), "name": pa.array(["Apollo", "Gemini", None, "Apollo"]),
        "commander_id": pa.array([10, 11, None, 12], pa.int32()),
        "started_at": pa.array([T0, T0, None, T0], pa.timestamp("us", "UTC"))})
    copy_clean_to_raw(staging, "missions")
    staging.clear("clean", "mission_briefs")
    write_clean(staging, "mission_briefs", {"mission_id": pa.array([1, 4], pa.int64()),
                                            "summary": pa.array(["moon", "copy"]), "details": pa.array(["{}", "[]"])})
    res = load_collection(db, spec, "missions", staging, strategy=strategy)
    assert (res.documents, res.rejected) == (2, 2)
    assert [d["_id"] for d in contents(db["missions"])] == [1, 2]  # mission 3's old version is gone too
    rows = {row["source_key"]: row for row in pq.read_table(
        f"{staging.dir('quarantine', 'missions')}/{UNLOADABLE_FILE}").to_pylist()}
    assert set(rows) == {'{"id": 3}', '{"id": 4}'}
    assert rows['{"id": 3}']["reason"].startswith("rejected by the server (code 121): ")
    assert "name: type did not match" in rows['{"id": 3}']["reason"]
    assert rows['{"id": 4}']["reason"].startswith("rejected by the server (code 11000): ")
    assert f"collection: {db.name}.missions index: name_1 dup key: {{ name: \"Apollo\" }}" in rows['{"id": 4}']["reason"]
    [brief] = pq.read_table(f"{staging.dir('quarantine', 'mission_briefs')}/{UNLOADABLE_FILE}").to_pylist()
    assert brief["source_key"] == '{"mission_id": 4}' and brief["reason"].startswith("parent missions _id=4 rejected: ")
    count = _checks(db, spec, staging, "missions")[r.DOCUMENT_COUNT]
    assert count.passed and "2 document(s), source 4 − quarantined 2" in count.detail
    assert failed_checks(db, spec, staging, MISSION_TABLES) == {}


def test_reload_keeps_indexes_validators_ttl_and_timeseries_options(mongo_server, tmp_path):
    spec, staging, db = _mission_load(*mongo_server, tmp_path, telemetry=TELEMETRY, sessions=SESSIONS)
    write_clean(staging, "telemetry", {"drone_id": pa.array([1], pa.int32()),
                                       "recorded_at": pa.array([T0], pa.timestamp("us", "UTC")),
                                       "altitude": pa.array([1.0])})
    write_clean(staging, "sessions", {"id": pa.array([1], pa.int64()),
                                      "last_seen": pa.array([T0], pa.timestamp("us", "UTC"))})
    setup_collections(db, spec)
    wanted = {n: (db[n].options(), db[n].index_information()) for n in ("missions", "telemetry", "sessions")}
    assert wanted["sessions"][1]["ttl_last_seen"]["expireAfterSeconds"] == 3 * 86400
    assert wanted["telemetry"][0]["expireAfterSeconds"] == 7 * 86400
    assert wanted["telemetry"][0]["timeseries"] == {"timeField": "recorded_at", "metaField": "drone_id",
                                                    "granularity": "seconds"}
    for _ in range(2):
        for table in wanted:
            load_collection(db, spec, table, staging)
        assert {n: (db[n].options(), db[n].index_information()) for n in wanted} == wanted
        assert not [n for n in db.list_collection_names() if n.endswith(TMP_SUFFIX)]
    assert all("unchanged" in a for a in setup_collections(db, spec))


def test_server_refuses_what_the_load_quarantined_as_too_large(mongo_server, tmp_path):
    uri, database = mongo_server
    staging = Staging(str(tmp_path / "staging"))
    write_mission_tables(staging, payload_bytes=6 * 1024 * 1024)
    spec = mission_spec(uri, tmp_path / "staging", database=database)
    db = mongo_client(uri)[database]
    [big] = [d for b in iter_documents(spec, "missions", staging, max_bytes=2**40) for d in b.documents
             if d["_id"] == 1]
    assert len(bson.encode(big)) > MAX_DOCUMENT_BYTES
    with pytest.raises((DocumentTooLarge, OperationFailure)):
        db["plain"].insert_one(big)
    res = load_collection(db, spec, "missions", staging)
    assert res.documents == 2 and res.too_large[0].startswith("missions _id=1: document too large")


def test_backup_create_restore_and_rollback_keep_every_document(mongo_server, tmp_path, monkeypatch):
    uri, database = mongo_server
    monkeypatch.setenv("NOVA_BACKUP_KEY", KEY_HEX)
    spec, staging, db = _mission_load(uri, database, tmp_path, telemetry=TELEMETRY, sessions=SESSIONS)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    write_clean(staging, "telemetry", {"drone_id": pa.array([1, 2], pa.int32()),
                                       "recorded_at": pa.array([now, now], pa.timestamp("us", "UTC")),
                                       "altitude": pa.array([1.0, float("nan")])})
    write_clean(staging, "sessions", {"id": pa.array([2**40], pa.int64()),
                                      "last_seen": pa.array([now], pa.timestamp("us", "UTC"))})
    source = tmp_path / "nova.sqlite"
    sqlite3.connect(source).close()
    spec = spec.model_copy(update={"source": spec.source.model_copy(update={"sqlite": str(source)}),
                                   "reports": str(tmp_path / "reports")})
    for table in ("missions", "telemetry", "sessions"):
        load_collection(db, spec, table, staging)
    db["extras"].insert_one({"_id": bson.ObjectId(), "bin": bson.Binary(b"\x00\x01", 4), "dec": Decimal128("1.10"),
                             "big": Int64(2**62)})
    before = _fingerprint(db)
    dest = str(tmp_path / "backups")
    pre = create_backup(spec, dest=dest, label="pre-migration")
    assert pre.manifest["versions"]["mongodb"] == mongo_client(uri).server_info()["version"]

    copy = f"{database}_restored"
    try:
        done = restore(pre.location, None, uri, mongo_database=copy)
        assert done["mongo"]["documents"] == {"extras": 1, "missions": 3, "sessions": 1, "telemetry": 2}
        assert _fingerprint(mongo_client(uri)[copy]) == before
    finally:
        mongo_client(uri).drop_database(copy)

    db["missions"].delete_one({"_id": 1})
    db["telemetry"].drop()
    db["later"].insert_one({"_id": 1})
    rollback(spec, None, uri, reason="test", dest=dest)
    assert _fingerprint(db) == before


def _fingerprint(db) -> dict[str, object]:
    """Every collection's documents (as BSON), options and indexes."""
    return {name: ([bson.encode(d) for d in db[name].find({}, sort=[("_id", 1)])], db[name].options(),
                   sorted((ix["name"], tuple(ix["key"].items()), ix.get("unique"), ix.get("expireAfterSeconds"))
                          for ix in db[name].list_indexes()))
            for name in sorted(db.list_collection_names())}


def test_migrate_reports_the_server_and_verifies_validators(mongo_server, tmp_path, pg_url):
    """The CLI end to end: the report names the server and its version; no check is left 'not verified'."""
    uri, database = mongo_server
    source = tmp_path / "app.sqlite"
    with sqlite3.connect(source) as conn:
        conn.executescript("""
            CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL);
            CREATE TABLE events (id INTEGER PRIMARY KEY, user_id INTEGER, at DATETIME, payload TEXT);
            INSERT INTO users VALUES (1, 'a@x.io'), (2, 'b@x.io');
            INSERT INTO events VALUES (1, 1, '2024-01-02T00:00:00Z', '{"k": 1}'), (2, 2, '2024-01-03 10:00:00', NULL);
        """)
    conn.close()
    spec_path = tmp_path / "app.yaml"
    runner = CliRunner()
    res = runner.invoke(main, ["init", "--source", str(source), "--out", str(spec_path)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    data = yaml.safe_load(spec_path.read_text())
    data["targets"]["mongo"] = {"uri": uri, "database": database}
    data["tables"]["events"]["target"] = "mongo"
    data.pop("parity", None)  # init's proposed SQLite/PostgreSQL parity queries read events, now in MongoDB
    spec_path.write_text(yaml.safe_dump(data))
    res = runner.invoke(main, ["migrate", "--spec", str(spec_path), "--postgres-url", pg_url, "--no-backup", "--json"],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    rep = json.loads(res.output[res.output.index("{"):])
    version = mongo_client(uri).server_info()["version"]
    assert f"MongoDB documents went to MongoDB {version} at {uri}." in rep["notes"]
    mongo = [c for c in rep["checks"] if c["check"] in r.MONGO_CHECKS]
    assert {c["check"] for c in mongo} == set(r.MONGO_CHECKS)
    assert all(c["passed"] and "not verified" not in c["detail"] for c in mongo), mongo
    assert mongo_client(uri)[database]["events"].count_documents({}) == 2


def test_setup_changes_are_applied_in_place(mongo_server, tmp_path):
    """Partial and TTL indexes as listed by the server; a changed TTL, time-series TTL or validator is applied."""
    uri, database = mongo_server
    db = mongo_client(uri)[database]
    setup_collections(db, setup_spec_for(uri, tmp_path))
    db["audit_logs"].insert_one({"_id": Int64(1), "level": "error"})
    audit = db["audit_logs"].index_information()
    assert audit["level_1_created_at_-1"]["partialFilterExpression"] == {"level": {"$eq": "error"}}
    assert audit["ttl_created_at"]["expireAfterSeconds"] == 90 * 86400
    assert db["audit_logs"].options()["validationAction"] == "warn"
    assert all("unchanged" in a for a in setup_collections(db, setup_spec_for(uri, tmp_path)))
    changed = mission_spec(uri, tmp_path, database=database,
                           telemetry={**SETUP_TELEMETRY, "ttl": {"field": "recorded_at", "days": 2}},
                           audit_logs={**AUDIT, "validation_action": "error", "ttl": {"field": "created_at", "days": 30}})
    actions = setup_collections(db, changed)
    assert "audit_logs: validator updated (validationAction=error)" in actions
    assert "audit_logs: index ttl_created_at rebuilt on [('created_at', 1)], expireAfterSeconds=2592000" in actions
    assert db["audit_logs"].options()["validationAction"] == "error"
    assert db["audit_logs"].index_information()["ttl_created_at"]["expireAfterSeconds"] == 30 * 86400
    assert db["audit_logs"].count_documents({}) == 1
    if "drone_telemetry: expireAfterSeconds set to 172800" not in actions:  # SecantusDB ignores this collMod
        assert ("drone_telemetry: expireAfterSeconds still 604800 after collMod (this server does not change it): "
                "the next full load re-creates the collection with 172800") in actions
        staging = Staging(str(tmp_path / "staging"))
        write_clean(staging, "telemetry", {"drone_id": pa.array([1], pa.int32()),
                                           "recorded_at": pa.array([T0], pa.timestamp("us", "UTC")),
                                           "altitude": pa.array([1.0])})
        load_collection(db, changed.model_copy(update={"staging": str(tmp_path / "staging")}), "telemetry", staging)
    assert db["drone_telemetry"].options()["expireAfterSeconds"] == 2 * 86400


def _check_staging(uri: str, database: str, tmp_path):
    """test_validation_mongo_checks' tables staged (raw and clean) and their spec on the real server."""
    staging = Staging(str(tmp_path / "staging"))
    for name, data in (("users", USERS), ("logins", LOGINS)):
        for kind in ("raw", "clean"):
            with staging.writer(kind, name, data.schema) as w:
                w.write_table(data)
    spec = parse_spec({**CHECK_SPEC, "staging": str(tmp_path / "staging"),
                       "targets": {"postgres": None, "mongo": {"uri": uri, "database": database}}})
    return spec, staging


@pytest.fixture
def check_env(mongo_server, tmp_path):
    """test_validation_mongo_checks' documents and source facts, on the real server."""
    uri, database = mongo_server
    spec, staging = _check_staging(uri, database, tmp_path)
    db = mongo_client(uri)[database]
    db.users.insert_many(check_documents())
    return spec, db, {t: source_facts(spec, t, staging) for t in ("users", "logins")}


def test_check_failures_are_found_on_a_real_server(check_env):
    mongomock_checks.test_missing_document_and_changed_field_fail(check_env)


def test_dropped_embedded_child_is_found_on_a_real_server(check_env):
    mongomock_checks.test_dropped_embedded_child_fails_count(check_env)


def test_timestamp_precision_on_a_real_server(check_env):
    mongomock_checks.test_timestamps_compare_at_bson_millisecond_precision(check_env)


def test_checks_count_the_children_split_into_their_own_collection(mongo_server, tmp_path, monkeypatch):
    """`too_large: split` moves a parent's children to `<collection>_<as>`: the counts look there too."""
    monkeypatch.setattr(mongo_load, "MAX_DOCUMENT_BYTES", 2500)  # small documents stand in for 16 MiB ones
    uri, database = mongo_server
    staging = Staging(str(tmp_path / "staging"))
    write_mission_tables(staging, payload_bytes=1000)
    copy_clean_to_raw(staging, *MISSION_TABLES)
    spec = mission_spec(uri, tmp_path / "staging", database=database, too_large="split")
    db = mongo_client(uri)[database]
    res = load_collection(db, spec, "missions", staging)
    assert (res.documents, res.split_documents) == (3, 3)
    assert failed_checks(db, spec, staging, MISSION_TABLES) == {}
    drones = _checks(db, spec, staging, "mission_drones")[r.DOCUMENT_COUNT]
    assert drones.detail.startswith("missions.drones: 4 embedded (3 in missions_drones), expected 4")
    db["missions_drones"].delete_one({"_id": 2})
    assert "3 embedded (2 in missions_drones), expected 4" in _checks(db, spec, staging, "mission_drones")[
        r.DOCUMENT_COUNT].detail
    assert not _checks(db, spec, staging, "drone_events")[r.DOCUMENT_COUNT].passed  # drone 2's event went with it
