"""Collection loads: idempotent re-runs for both strategies, windows, time series, splits, retries.

The check_* scenarios take a MongoDB URI and a database name so that
test_mongo_real_server.py runs exactly the same loads against a real server.
"""

from __future__ import annotations

import datetime as dt

import bson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bson.codec_options import CodecOptions
from pymongo.errors import AutoReconnect, BulkWriteError

from nova_pipeline.core.connections import mongo_client
from nova_pipeline.load.mongo_documents import MAX_DOCUMENT_BYTES, UNLOADABLE_FILE, iter_documents
from nova_pipeline.load.mongo_load import MongoLoadError, load_collection, write_batch
from nova_pipeline.load.mongo_setup import setup_collections
from nova_pipeline.core.staging import Staging
from nova_pipeline.validate.mongo_checks import mongo_checks
from nova_pipeline.validate.source_facts import source_facts
from nova_pipeline_tests.load.test_mongo_documents import T0, mission_spec, write_clean, write_mission_tables

DECODE = CodecOptions(tz_aware=True)
MISSION_TABLES = ("missions", "mission_drones", "drone_events", "mission_briefs")
FLIGHTS = {"target": "mongo", "primary_key": ["id"], "partition": {"column": "at", "grain": "day"},
           "columns": {"id": {"type": "bigint"}, "at": {"type": "timestamptz"}, "pilot": {"type": "text"}}}
TELEMETRY = {"target": "mongo", "ttl": {"field": "recorded_at", "days": 7},
             "timeseries": {"time_field": "recorded_at", "meta_field": "drone_id"},
             "columns": {"drone_id": {"type": "integer"}, "recorded_at": {"type": "timestamptz"},
                         "altitude": {"type": "double precision"}}}


def contents(coll) -> list[dict]:
    return list(coll.find({}, sort=[("_id", 1)]))


def stored(docs) -> list[dict]:
    """Documents as a server stores them (BSON round trip), sorted by _id."""
    return sorted((bson.decode(bson.encode(d), codec_options=DECODE) for d in docs), key=lambda d: d["_id"])


def check_full_load_is_idempotent(uri: str, database: str, tmp_path, strategy: str) -> None:
    staging = Staging(str(tmp_path / "staging"))
    write_mission_tables(staging)
    spec = mission_spec(uri, tmp_path / "staging", database=database, batch_size=2)
    db = mongo_client(uri)[database]
    setup_collections(db, spec)
    first = load_collection(db, spec, "missions", staging, strategy=strategy)
    assert (first.documents, first.quarantined_orphans, first.quarantined, first.children_cut) == (3, 3, 1, 1)
    assert first.strategy == strategy and first.docs_per_s > 0
    expected = stored(d for b in iter_documents(spec, "missions", staging) for d in b.documents)
    loaded = contents(db["missions"])
    assert loaded == expected and [d["_id"] for d in loaded] == [1, 2, 3]
    assert all(len(bson.encode(d)) <= MAX_DOCUMENT_BYTES for d in loaded)
    assert loaded[0]["drones"][0]["events"][0]["kind"] == "takeoff" and loaded[0]["commander_id"] == 10
    [dup] = pq.read_table(f"{staging.dir('quarantine', 'mission_briefs')}/{UNLOADABLE_FILE}").to_pylist()
    assert dup["reason"].startswith("duplicate:")
    assert "name_1" in db["missions"].index_information()  # the replacement was created like the target
    assert db.list_collection_names().count("missions__nova_tmp") == 0

    again = load_collection(db, spec, "missions", staging, strategy=strategy)
    assert again.documents == 3 and db["missions"].count_documents({}) == 3
    assert contents(db["missions"]) == expected

    staging.clear("clean", "missions")  # mission 3 disappears from the source: a re-run removes it
    write_clean(staging, "missions", {"id": pa.array([1, 2], pa.int64()), "name": pa.array(["Apollo", "Gemini"]),
                                      "commander_id": pa.array([10, 11], pa.int32()),
                                      "started_at": pa.array([T0, T0], pa.timestamp("us", "UTC"))})
    load_collection(db, spec, "missions", staging, strategy=strategy)
    assert [d["_id"] for d in contents(db["missions"])] == [1, 2]


def check_window_load_replaces_only_its_window(uri: str, database: str, tmp_path) -> None:
    staging = Staging(str(tmp_path / "staging"))
    spec = mission_spec(uri, tmp_path / "staging", database=database, flights=FLIGHTS)
    days = [T0, T0 + dt.timedelta(days=1)]
    for i, day in enumerate(days):
        write_clean(staging, "flights", {
            "id": pa.array([10 * i + 1, 10 * i + 2], pa.int64()),
            "at": pa.array([day, day + dt.timedelta(hours=5)], pa.timestamp("us", "UTC")),
            "pilot": pa.array(["ann", "bob"])}, partition=day.date().isoformat(), first_rowid=10 * i + 1)
    db = mongo_client(uri)[database]
    for day in (*days, days[0]):  # the first window twice: a re-run must not duplicate
        res = load_collection(db, spec, "flights", staging, partition=day.date().isoformat(),
                              window=(day, day + dt.timedelta(days=1)))
        assert res.documents == 2 and res.strategy == "window"
    assert [d["_id"] for d in contents(db["flights"])] == [1, 2, 11, 12]


def check_timeseries_load_is_idempotent(uri: str, database: str, tmp_path) -> None:
    staging = Staging(str(tmp_path / "staging"))
    spec = mission_spec(uri, tmp_path / "staging", database=database, telemetry=TELEMETRY)
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    write_clean(staging, "telemetry", {
        "drone_id": pa.array([1, 1, 2], pa.int32()),
        # recent readings: the 7-day TTL would expire older ones (mongomock applies TTL on reads)
        "recorded_at": pa.array([now + dt.timedelta(seconds=s) for s in (0, 1, 0)], pa.timestamp("us", "UTC")),
        "altitude": pa.array([10.5, float("nan"), 3.0])})
    db = mongo_client(uri)[database]
    for _ in range(2):
        res = load_collection(db, spec, "telemetry", staging)
        assert res.documents == 3 and res.strategy == "recreate"
        assert db["telemetry"].count_documents({}) == 3
    assert sorted(d["_id"] for d in db["telemetry"].find()) == [1, 2, 3]


def copy_clean_to_raw(staging: Staging, *tables: str) -> None:
    """Raw = clean, as after a transform that rejected nothing (checks count the source from raw)."""
    for table in tables:
        staging.clear("raw", table)
        data = pa.Table.from_batches(list(staging.read_batches("clean", table)))
        with staging.writer("raw", table, data.schema) as w:
            w.write_table(data)


def failed_checks(db, spec, staging: Staging, tables) -> dict[str, str]:
    """check → detail of every failing ERROR check of these tables (validator_compliance is a WARN)."""
    return {f"{t}.{c.check}": c.detail for t in tables for c in mongo_checks(db, spec, t, source_facts(spec, t, staging))
            if not c.passed and c.severity == "ERROR"}


def check_oversized_parent_load(uri: str, database: str, tmp_path, mode: str) -> None:
    staging = Staging(str(tmp_path / "staging"))
    write_mission_tables(staging, payload_bytes=6 * 1024 * 1024)
    copy_clean_to_raw(staging, *MISSION_TABLES)
    spec = mission_spec(uri, tmp_path / "staging", database=database, too_large=mode)
    db = mongo_client(uri)[database]
    for _ in range(2):
        res = load_collection(db, spec, "missions", staging)
        assert len(res.too_large) == 1 and res.too_large[0].startswith("missions _id=1: document too large")
        if mode == "split":
            assert (res.documents, res.split_documents) == (3, 3)
            assert [(d["_id"], d["_parent"]) for d in contents(db["missions_drones"])] == [(1, 1), (2, 1), (3, 1)]
            assert db["missions"].find_one({"_id": 1})["drones_collection"] == "missions_drones"
        else:
            assert (res.documents, res.split_documents) == (2, 0)
            assert [d["_id"] for d in contents(db["missions"])] == [2, 3]
            rows = pq.read_table(f"{staging.dir('quarantine', 'missions')}/{UNLOADABLE_FILE}").to_pylist()
            assert [r["source_key"] for r in rows] == ['{"id": 1}']
            drones = pq.read_table(f"{staging.dir('quarantine', 'mission_drones')}/{UNLOADABLE_FILE}")
            assert drones.num_rows == 3


@pytest.mark.parametrize("strategy", ["rename", "upsert"])
def test_full_load_is_idempotent(tmp_path, mongo_uri, strategy):
    check_full_load_is_idempotent(mongo_uri, "nova", tmp_path, strategy)


def test_window_load_replaces_only_its_window(tmp_path, mongo_uri):
    check_window_load_replaces_only_its_window(mongo_uri, "nova", tmp_path)


def test_timeseries_load_is_idempotent(tmp_path, mongo_uri):
    check_timeseries_load_is_idempotent(mongo_uri, "nova", tmp_path)


@pytest.mark.parametrize("mode", ["quarantine", "split"])
def test_oversized_parent_load(tmp_path, mongo_uri, mode):
    check_oversized_parent_load(mongo_uri, "nova", tmp_path, mode)


def test_quarantine_files_are_replaced_on_rerun(tmp_path, mongo_uri):
    staging = Staging(str(tmp_path / "staging"))
    write_mission_tables(staging)
    spec = mission_spec(mongo_uri, tmp_path / "staging")
    db = mongo_client(mongo_uri)["nova"]
    load_collection(db, spec, "missions", staging)
    path = f"{staging.dir('quarantine', 'mission_briefs')}/{UNLOADABLE_FILE}"
    assert staging.fs.get_file_info(path).size > 0
    staging.clear("clean", "mission_briefs")
    write_clean(staging, "mission_briefs", {"mission_id": pa.array([1], pa.int64()), "summary": pa.array(["moon"]),
                                            "details": pa.array(["{}"])})
    assert load_collection(db, spec, "missions", staging).quarantined == 0
    assert staging.fs.get_file_info(path).type.name == "NotFound"


@pytest.mark.parametrize("strategy", ["rename", "upsert"])
def test_documents_the_server_rejects_are_quarantined_and_the_rest_loaded(tmp_path, mongo_uri, strategy):
    staging = Staging(str(tmp_path / "staging"))
    write_mission_tables(staging)
    staging.clear("clean", "missions")
    write_clean(staging, "missions", {"id": pa.array([1, 2, 3], pa.int64()), "name": pa.array(["A", "B", "A"]),
                                      "commander_id": pa.array([1, 2, 3], pa.int32()),
                                      "started_at": pa.array([T0, T0, T0], pa.timestamp("us", "UTC"))})
    spec = mission_spec(mongo_uri, tmp_path / "staging")
    db = mongo_client(mongo_uri)["nova"]
    res = load_collection(db, spec, "missions", staging, strategy=strategy)
    assert (res.documents, res.rejected) == (2, 1) and [d["_id"] for d in contents(db["missions"])] == [1, 2]
    [row] = pq.read_table(f"{staging.dir('quarantine', 'missions')}/{UNLOADABLE_FILE}").to_pylist()
    assert row["source_key"] == '{"id": 3}' and row["reason"].startswith("rejected by the server (code 11000): E11000")
    assert '"name": "A"' in row["row"]


class FlakyCollection:
    """Fails like a primary step-down mid-batch: the first call writes the documents, then raises."""

    def __init__(self, failures):
        self.failures, self.calls, self.docs = list(failures), 0, {}

    def insert_many(self, docs, ordered):
        assert ordered is False
        self.calls += 1
        dups = [{"index": i, "code": 11000, "op": d, "errmsg": "E11000 duplicate key"}
                for i, d in enumerate(docs) if d["_id"] in self.docs]
        self.docs.update({d["_id"]: d for d in docs})
        if self.failures:
            raise self.failures.pop(0)
        if dups:
            raise BulkWriteError({"writeErrors": dups})


def test_write_batch_retries_transient_errors_with_backoff():
    coll, sleeps = FlakyCollection([AutoReconnect("not primary")] * 2), []
    assert write_batch(coll, [{"_id": 1}, {"_id": 2}], upsert=False, where="missions", sleep=sleeps.append) == []
    assert coll.calls == 3 and sleeps == [0.5, 1.0] and sorted(coll.docs) == [1, 2]


def test_write_batch_returns_rejected_documents_with_the_servers_reason():
    details = {"operatorName": "$jsonSchema", "schemaRulesNotSatisfied": [
        {"operatorName": "properties", "propertiesNotSatisfied": [{"propertyName": "name", "details": [
            {"operatorName": "bsonType", "reason": "type did not match", "consideredType": "int"}]}]},
        {"operatorName": "required", "missingProperties": ["started_at"]}]}
    coll = FlakyCollection([BulkWriteError({"writeErrors": [
        {"index": 1, "code": 121, "op": {"_id": 8}, "errmsg": "Document failed validation",
         "errInfo": {"failingDocumentId": 8, "details": details}}]})])
    docs = [{"_id": 7}, {"_id": 8}]
    assert write_batch(coll, docs, upsert=False, where="missions", sleep=lambda s: None) == [
        (docs[1], "rejected by the server (code 121): Document failed validation "
                  "(name: type did not match (found int); document: missing started_at)")]


def test_write_batch_raises_when_the_write_concern_fails():
    coll = FlakyCollection([BulkWriteError({"writeErrors": [], "writeConcernErrors": [
        {"code": 64, "errmsg": "waiting for replication timed out"}]})])
    with pytest.raises(MongoLoadError, match=r"^missions: write concern not satisfied: waiting for replication"):
        write_batch(coll, [{"_id": 7}], upsert=False, where="missions", sleep=lambda s: None)
