"""Collections from the spec: validator derivation, indexes, TTL, time-series fallback, idempotency."""

from __future__ import annotations

from nova_pipeline.core.connections import mongo_client
from nova_pipeline.load.mongo_setup import json_schema, setup_collections
from nova_pipeline_tests.load.test_mongo_documents import mission_spec

TELEMETRY = {"target": "mongo", "collection": "drone_telemetry", "ttl": {"field": "recorded_at", "days": 7},
             "timeseries": {"time_field": "recorded_at", "meta_field": "drone_id", "granularity": "minutes"},
             "columns": {"drone_id": {"type": "integer"}, "recorded_at": {"type": "timestamptz", "nullable": False},
                         "altitude": {"type": "real"}}}
AUDIT = {"target": "mongo", "validation_action": "warn", "ttl": {"field": "created_at", "days": 90},
         "primary_key": ["id"],
         "columns": {"id": {"type": "bigint"}, "created_at": {"type": "timestamptz", "nullable": False},
                     "details": {"type": "text"}, "level": {"type": "varchar(8)"}},
         "json_columns": ["details"],
         "indexes": [{"columns": ["level", "-created_at"], "partial_filter": {"level": {"$eq": "error"}}}]}


def spec_for(uri, tmp_path):
    return mission_spec(uri, tmp_path, telemetry=TELEMETRY, audit_logs=AUDIT)


def test_validator_is_derived_from_the_spec(tmp_path, mongo_uri):
    spec = spec_for(mongo_uri, tmp_path)
    schema = json_schema(spec, "missions")["$jsonSchema"]
    assert schema["required"] == ["_id", "name"]
    props = schema["properties"]
    assert props["_id"] == {"bsonType": "long"} and "id" not in props
    assert props["name"] == {"bsonType": "string"}
    assert props["commander_id"] == {"bsonType": ["int", "null"]}
    assert props["started_at"] == {"bsonType": ["date", "null"]}
    drones = props["drones"]
    assert drones["bsonType"] == "array" and drones["items"]["required"] == ["id"]
    assert drones["items"]["properties"]["mission_id"] == {"bsonType": ["long", "null"]}
    assert drones["items"]["properties"]["events"]["items"]["properties"]["at"] == {"bsonType": ["date", "null"]}
    brief = props["brief"]["anyOf"]
    assert brief[1] == {"bsonType": "null"} and brief[0]["properties"]["details"] == {}  # jsonb: any JSON value
    audit = json_schema(spec, "audit_logs")["$jsonSchema"]["properties"]
    assert audit["details"] == {} and audit["level"] == {"bsonType": ["string", "null"]}
    assert json_schema(spec, "drone_events")["$jsonSchema"]["properties"]["_id"] == {"bsonType": "long"}


def test_setup_reports_what_mongomock_could_not_apply(tmp_path, mongo_uri):
    spec = spec_for(mongo_uri, tmp_path)
    db = mongo_client(mongo_uri)["nova"]
    actions = setup_collections(db, spec)
    assert sorted(db.list_collection_names()) == ["audit_logs", "drone_telemetry", "missions"]  # embedded: none
    assert "missions: created WITHOUT validator: this server (mongomock) accepts no collection options" in actions
    assert ("drone_telemetry: time-series not supported by this server (mongomock): plain collection with an index "
            "on recorded_at") in actions
    missions = db["missions"].index_information()
    assert missions["name_1"]["key"] == [("name", 1)] and missions["name_1"]["unique"] is True
    assert missions["started_at_-1_commander_id_1"]["key"] == [("started_at", -1), ("commander_id", 1)]
    audit = db["audit_logs"].index_information()
    assert audit["ttl_created_at"] == {"key": [("created_at", 1)], "expireAfterSeconds": 90 * 86400, "v": 2}
    assert audit["level_1_created_at_-1"]["partialFilterExpression"] == {"level": {"$eq": "error"}}
    telemetry = db["drone_telemetry"].index_information()
    assert telemetry["timeseries_drone_id_recorded_at"]["key"] == [("drone_id", 1), ("recorded_at", 1)]
    assert telemetry["ttl_recorded_at"]["expireAfterSeconds"] == 7 * 86400


def test_setup_is_idempotent_and_rebuilds_changed_indexes(tmp_path, mongo_uri):
    db = mongo_client(mongo_uri)["nova"]
    setup_collections(db, spec_for(mongo_uri, tmp_path))
    db["audit_logs"].insert_one({"_id": 1})
    again = setup_collections(db, spec_for(mongo_uri, tmp_path), tables=["audit_logs"])
    assert again == ["audit_logs: exists; validator not checked: this server (mongomock) cannot report or modify options",
                     "audit_logs: index level_1_created_at_-1 unchanged", "audit_logs: index ttl_created_at unchanged"]
    changed = mission_spec(mongo_uri, tmp_path, telemetry=TELEMETRY,
                           audit_logs={**AUDIT, "ttl": {"field": "created_at", "days": 30}})
    actions = setup_collections(db, changed, tables=["audit_logs"])
    assert "audit_logs: index ttl_created_at rebuilt on [('created_at', 1)], expireAfterSeconds=2592000" in actions
    assert db["audit_logs"].index_information()["ttl_created_at"]["expireAfterSeconds"] == 30 * 86400
    assert db["audit_logs"].count_documents({}) == 1
