"""Documents from clean Parquet: BSON types, _id, embedding, orphans, the 16 MiB limit.

The builders here (write_clean, mission_spec, write_mission_tables) are shared
with test_mongo_load.py and test_mongo_real_server.py.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import bson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from bson.codec_options import CodecOptions
from bson.decimal128 import Decimal128
from bson.int64 import Int64

from nova_pipeline.load.mongo_documents import (
    MAX_DOCUMENT_BYTES, ORPHANS_FILE, QUARANTINE_SCHEMA, bson_values, document_field, iter_documents,
    quarantine_orphans,
)
from nova_pipeline.core.spec import parse_spec
from nova_pipeline.core.staging import Staging

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
DECODE = CodecOptions(tz_aware=True)


def write_clean(staging: Staging, table: str, columns: dict[str, pa.Array], *, first_rowid: int = 1,
                partition: str | None = None) -> None:
    """A clean Parquet file following the contract: target columns, then `_nova_rowid` (int64) last."""
    n = len(next(iter(columns.values())))
    data = pa.table({**columns, "_nova_rowid": pa.array(range(first_rowid, first_rowid + n), pa.int64())})
    with staging.writer("clean", table, data.schema, partition) as w:
        w.write_table(data)


def mission_spec(uri: str, staging_dir, *, too_large: str = "quarantine", batch_size: int = 10_000,
                 database: str = "nova", **tables):
    """missions ⟵ mission_drones (array, sort -seq, limit 3) ⟵ drone_events (array, two levels);
    mission_briefs as a sub-document; plus any extra tables given as keyword arguments."""
    return parse_spec({
        "source": {"sqlite": "nova.sqlite"},
        "staging": str(staging_dir),
        "targets": {"postgres": None, "mongo": {"uri": uri, "database": database, "batch_size": batch_size}},
        "tables": {
            "missions": {
                "target": "mongo", "primary_key": ["id"], "reference": {"commander_id": "users"},
                "columns": {"id": {"type": "bigint", "nullable": False}, "name": {"type": "text", "nullable": False},
                            "commander_id": {"type": "integer"}, "started_at": {"type": "timestamptz"}},
                "indexes": [{"columns": ["name"], "unique": True}, {"columns": ["-started_at", "commander_id"]}],
                "embed": [
                    {"table": "mission_drones", "on": "mission_id", "as": "drones", "sort": "-seq", "limit": 3,
                     "too_large": too_large,
                     "embed": [{"table": "drone_events", "on": "mission_drone_id", "as": "events", "sort": "at"}]},
                    {"table": "mission_briefs", "on": "mission_id", "as": "brief", "mode": "document"},
                ]},
            "mission_drones": {
                "target": "mongo", "primary_key": ["id"],
                "columns": {"id": {"type": "integer", "nullable": False}, "mission_id": {"type": "bigint"},
                            "seq": {"type": "integer"}, "payload": {"type": "text"}}},
            "drone_events": {
                "target": "mongo",
                "columns": {"mission_drone_id": {"type": "integer"}, "at": {"type": "timestamptz"},
                            "kind": {"type": "text"}}},
            "mission_briefs": {
                "target": "mongo", "primary_key": ["mission_id"],
                "columns": {"mission_id": {"type": "bigint", "nullable": False}, "summary": {"type": "text"},
                            "details": {"type": "jsonb"}}},
            **tables,
        }})


def write_mission_tables(staging: Staging, *, payload_bytes: int = 4) -> None:
    """Mission 1: four drones (one cut by limit), drone 1 with two events; mission 2: one drone and two briefs
    (the second is a duplicate); mission 3: nothing. Orphans: drone 6 (mission 999), events of drones 6 and 77."""
    ts = pa.timestamp("us", "UTC")
    write_clean(staging, "missions", {
        "id": pa.array([1, 2, 3], pa.int64()), "name": pa.array(["Apollo", "Gemini", "Mercury"]),
        "commander_id": pa.array([10, 11, None], pa.int32()),
        "started_at": pa.array([T0, T0 + dt.timedelta(days=1), None], ts)})
    write_clean(staging, "mission_drones", {
        "id": pa.array([1, 2, 3, 4, 5, 6], pa.int32()), "mission_id": pa.array([1, 1, 1, 1, 2, 999], pa.int64()),
        "seq": pa.array([4, 3, 2, 1, 1, 1], pa.int32()),
        "payload": pa.array(["p" * payload_bytes] * 6)}, first_rowid=101)
    write_clean(staging, "drone_events", {
        "mission_drone_id": pa.array([1, 1, 2, 6, 77], pa.int32()),
        "at": pa.array([T0 + dt.timedelta(minutes=m) for m in (5, 1, 2, 3, 4)], ts),
        "kind": pa.array(["land", "takeoff", "takeoff", "x", "y"])}, first_rowid=201)
    write_clean(staging, "mission_briefs", {
        "mission_id": pa.array([1, 2, 2], pa.int64()), "summary": pa.array(["moon", "orbit", "again"]),
        "details": pa.array(['{"crew": ["Neil", "Buzz"], "budget": 25000000000000000000}', "[1, 2]", "{}"])},
        first_rowid=301)


def documents(spec, table, staging, **kw):
    return [d for b in iter_documents(spec, table, staging, **kw) for d in b.documents]


def read_quarantine(staging: Staging, table: str, name: str) -> list[dict]:
    path = f"{staging.dir('quarantine', table)}/{name}"
    t = pq.read_table(path)
    assert t.schema == QUARANTINE_SCHEMA
    return t.to_pylist()


@pytest.fixture
def missions(tmp_path, mongo_uri):
    staging = Staging(str(tmp_path / "staging"))
    write_mission_tables(staging)
    return mission_spec(mongo_uri, tmp_path / "staging"), staging


def test_embedding_array_document_two_levels_sort_and_limit(missions):
    spec, staging = missions
    docs = {d["_id"]: d for d in documents(spec, "missions", staging)}
    assert sorted(docs) == [1, 2, 3]
    m1 = docs[1]
    assert "id" not in m1 and isinstance(m1["_id"], Int64)
    assert m1["name"] == "Apollo" and m1["commander_id"] == 10  # reference field kept as its value
    assert [d["seq"] for d in m1["drones"]] == [4, 3, 2]  # sorted by -seq, cut at limit 3
    assert [d["id"] for d in m1["drones"]] == [1, 2, 3]
    assert [e["kind"] for e in m1["drones"][0]["events"]] == ["takeoff", "land"]  # second level, sorted by at
    assert m1["drones"][1]["events"][0]["at"] == T0 + dt.timedelta(minutes=2)
    assert m1["drones"][2]["events"] == []
    assert all("_nova_rowid" not in d for d in m1["drones"])
    assert m1["brief"] == {"mission_id": 1, "summary": "moon",
                           "details": {"crew": ["Neil", "Buzz"], "budget": Decimal128("25000000000000000000")}}
    assert docs[2]["brief"]["summary"] == "orbit" and docs[2]["drones"][0]["id"] == 5
    assert docs[3]["drones"] == [] and docs[3]["brief"] is None
    batches = list(iter_documents(spec, "missions", staging))
    assert sum(b.children_cut for b in batches) == 1
    dup = [r for b in batches for r in b.quarantined["mission_briefs"]]
    assert [(r["source_key"], r["reason"]) for r in dup] == [
        ('{"mission_id": 2}', "duplicate: missions with mission_id=2 already has a brief document")]
    assert all(len(bson.encode(d)) <= MAX_DOCUMENT_BYTES for d in docs.values())


def test_orphans_are_quarantined_at_every_level(missions):
    spec, staging = missions
    assert quarantine_orphans(spec, "missions", staging) == 3
    drones = read_quarantine(staging, "mission_drones", ORPHANS_FILE)
    assert [(r["table"], r["source_key"], r["column"], r["raw_value"], r["reason"]) for r in drones] == [
        ("mission_drones", '{"id": 6}', "mission_id", "999", "orphan: no missions with id=999")]
    assert json.loads(drones[0]["row"])["mission_id"] == 999
    events = read_quarantine(staging, "drone_events", ORPHANS_FILE)
    assert sorted((r["source_key"], r["reason"]) for r in events) == [
        ('{"rowid": 204}', "orphan: no mission_drones with id=6"),
        ('{"rowid": 205}', "orphan: no mission_drones with id=77")]
    assert quarantine_orphans(spec, "missions", staging) == 3  # re-run replaces the file
    assert len(read_quarantine(staging, "drone_events", ORPHANS_FILE)) == 2


def test_composite_key_becomes_id_subdocument_and_no_key_uses_rowid(tmp_path, mongo_uri):
    staging = Staging(str(tmp_path))
    spec = mission_spec(mongo_uri, tmp_path, crew={
        "target": "mongo", "primary_key": ["mission_id", "user_id"],
        "columns": {"mission_id": {"type": "bigint"}, "user_id": {"type": "integer"}, "role": {"type": "text"}}},
        logs={"target": "mongo", "columns": {"msg": {"type": "text"}}})
    write_clean(staging, "crew", {"mission_id": pa.array([1, 1], pa.int64()), "user_id": pa.array([7, 8], pa.int32()),
                                  "role": pa.array(["pilot", "engineer"])})
    write_clean(staging, "logs", {"msg": pa.array(["a", "b"])}, first_rowid=41)
    assert documents(spec, "crew", staging) == [{"_id": {"mission_id": 1, "user_id": 7}, "role": "pilot"},
                                                {"_id": {"mission_id": 1, "user_id": 8}, "role": "engineer"}]
    assert documents(spec, "logs", staging) == [{"_id": 41, "msg": "a"}, {"_id": 42, "msg": "b"}]
    assert document_field(spec.tables["crew"], "user_id") == "_id.user_id"
    assert document_field(spec.tables["missions"], "id") == "_id"


ALL_TYPES = {
    "k": ("bigint", pa.array([1, 2], pa.int64())),
    "small": ("smallint", pa.array([-3, None], pa.int16())),
    "int": ("integer", pa.array([2**31 - 1, 0], pa.int32())),
    "big": ("bigint", pa.array([2**62, 5], pa.int64())),
    "dbl": ("double precision", pa.array([math.nan, math.inf], pa.float64())),
    "flt": ("real", pa.array([-math.inf, 0.5], pa.float32())),
    "num": ("numeric(30,10)", pa.array(["12345678901234567890.0123456789", "-0.10"])),
    "txt": ("text", pa.array(["héllo", ""])),
    "flag": ("boolean", pa.array([True, False])),
    "tstz": ("timestamptz", pa.array([T0, None], pa.timestamp("us", "UTC"))),
    "ts": ("timestamp", pa.array([dt.datetime(2024, 1, 2, 3, 4, 5), None], pa.timestamp("us"))),
    "day": ("date", pa.array([dt.date(2024, 2, 29), None], pa.date32())),
    "tod": ("time", pa.array([dt.time(13, 14, 15, 123456), None], pa.time64("us"))),
    "doc": ("jsonb", pa.array(['{"a": {"b": [1, 2.5, null, true]}, "n": 99999999999999999999}', None])),
    "arr": ("json", pa.array(["[1, \"x\"]", "3"])),
    "blob": ("bytea", pa.array([b"\x00\xff", None], pa.binary())),
    "id": ("uuid", pa.array(["0b9c5f3e-0000-4000-8000-000000000000", None])),
}


def test_every_bson_type_is_faithful(tmp_path, mongo_uri):
    staging = Staging(str(tmp_path))
    spec = mission_spec(mongo_uri, tmp_path, samples={
        "target": "mongo", "primary_key": ["k"], "columns": {n: {"type": t} for n, (t, _) in ALL_TYPES.items()}})
    write_clean(staging, "samples", {n: a for n, (_, a) in ALL_TYPES.items()})
    docs = documents(spec, "samples", staging)
    decoded = [bson.decode(bson.encode(d), codec_options=DECODE) for d in docs]  # what a server stores
    d = decoded[0]
    assert type(d["_id"]) is Int64 and type(d["big"]) is Int64 and d["big"] == 2**62
    assert type(decoded[1]["big"]) is Int64  # small bigint stays 64-bit
    assert type(d["int"]) is int and d["small"] == -3 and decoded[1]["small"] is None
    assert math.isnan(d["dbl"]) and decoded[1]["dbl"] == math.inf and d["flt"] == -math.inf
    assert d["num"] == Decimal128("12345678901234567890.0123456789") and decoded[1]["num"] == Decimal128("-0.10")
    assert d["txt"] == "héllo" and d["flag"] is True and decoded[1]["flag"] is False
    assert d["tstz"] == T0 and d["tstz"].tzinfo is not None
    assert d["ts"] == dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    assert d["day"] == dt.datetime(2024, 2, 29, tzinfo=UTC)
    assert d["tod"] == "13:14:15.123456"
    assert d["doc"] == {"a": {"b": [1, 2.5, None, True]}, "n": Decimal128("99999999999999999999")}
    assert d["arr"] == [1, "x"] and decoded[1]["arr"] == 3 and decoded[1]["doc"] is None
    assert d["blob"] == b"\x00\xff" and bson.encode(docs[0])  # bytes encode as BSON binary (subtype 0)
    assert d["id"] == "0b9c5f3e-0000-4000-8000-000000000000"


def test_bad_values_raise_one_line_errors_naming_the_column():
    with pytest.raises(ValueError, match=r"^t\.n: '1\.1{40}' is not representable as Decimal128"):
        bson_values(pa.array(["1." + "1" * 40]), "numeric", where="t.n")
    with pytest.raises(ValueError, match=r"^t\.j: invalid JSON text"):
        bson_values(pa.array(["{nope"]), "jsonb", where="t.j")
    assert bson_values(pa.array(["{nope"]), "jsonb", where="t.j", keep_invalid_json=True) == ["{nope"]


def test_not_encodable_document_is_quarantined(tmp_path, mongo_uri):
    staging = Staging(str(tmp_path))
    spec = mission_spec(mongo_uri, tmp_path, notes={
        "target": "mongo", "primary_key": ["k"], "columns": {"k": {"type": "integer"}, "doc": {"type": "jsonb"}}})
    write_clean(staging, "notes", {"k": pa.array([1, 2], pa.int32()), "doc": pa.array(['{"a\\u0000b": 1}', '{"ok": 1}'])})
    batch = next(iter_documents(spec, "notes", staging))
    assert batch.documents == [{"_id": 2, "doc": {"ok": 1}}]
    [row] = batch.quarantined["notes"]
    assert row["source_key"] == '{"k": 1}' and row["reason"].startswith("not BSON-encodable:")


@pytest.mark.parametrize("mode", ["quarantine", "split"])
def test_oversized_parent_is_handled_per_too_large(tmp_path, mongo_uri, mode):
    staging = Staging(str(tmp_path))
    write_mission_tables(staging, payload_bytes=6 * 1024 * 1024)  # mission 1: three 6 MiB drones > 16 MiB
    spec = mission_spec(mongo_uri, tmp_path, too_large=mode)
    batches = list(iter_documents(spec, "missions", staging))
    docs = {d["_id"]: d for b in batches for d in b.documents}
    [report] = [r for b in batches for r in b.too_large]
    assert report.startswith("missions _id=1: document too large: ") and "> 16777216" in report
    assert all(len(bson.encode(d)) <= MAX_DOCUMENT_BYTES for d in docs.values())
    quarantined = {t: rows for b in batches for t, rows in b.quarantined.items() if t != "mission_briefs"}
    if mode == "quarantine":
        assert sorted(docs) == [2, 3] and report.endswith("; quarantined")
        assert [r["source_key"] for r in quarantined["missions"]] == ['{"id": 1}']
        # its children (not the one past `limit`: counted as cut) and grandchildren go with it
        assert sorted(r["source_key"] for r in quarantined["mission_drones"]) == [f'{{"id": {i}}}' for i in (1, 2, 3)]
        assert len(quarantined["drone_events"]) == 3
        assert quarantined["drone_events"][0]["reason"].startswith("parent missions _id=1 quarantined: document too large")
    else:
        assert sorted(docs) == [1, 2, 3] and "children split into missions_drones" in report
        assert "drones" not in docs[1] and docs[1]["drones_collection"] == "missions_drones"
        assert docs[1]["brief"]["summary"] == "moon"
        split = [d for b in batches for d in b.split["missions_drones"]]
        assert [(d["_id"], d["_parent"], len(d["events"])) for d in split] == [(1, 1, 2), (2, 1, 1), (3, 1, 0)]
        assert not quarantined
