"""The project's MongoDB load against a plain unordered `insert_many` of the same documents, same server and process.

Usage: python benchmarks/mongo_bench.py --mongo-uri mongodb://127.0.0.1:27017 [--rows N] [--children K] [--runs R]

The table has a unique index and a TTL index, a `$jsonSchema` validator from the spec and K embedded
children per document. `load_collection` does everything a migration does: reads the clean Parquet, builds
and size-checks the BSON documents, writes them in unordered batches into a temporary collection created
with the validator and the unique index, builds the other indexes, renames it over the target. The plain
path gets the finished documents in memory and only inserts them (no validator, no index); the "like the
target" path inserts them into a collection set up first with the spec's validator and indexes (the
server's own share of the work). Each run uses a fresh database; medians and the ratios are printed.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid

import numpy as np
import pyarrow as pa
import pymongo

from nova_pipeline.load.mongo_documents import iter_documents
from nova_pipeline.load.mongo_load import load_collection
from nova_pipeline.load.mongo_setup import setup_collection
from nova_pipeline.core.spec import MongoTarget, parse_spec
from nova_pipeline.core.staging import Staging

T0_US = 1_704_067_200_000_000  # 2024-01-01T00:00:00Z


def spec_for(uri: str, database: str, staging: str):
    return parse_spec({
        "source": {"sqlite": "bench.sqlite"}, "staging": staging,
        "targets": {"postgres": None, "mongo": {"uri": uri, "database": database}},
        "tables": {
            "flights": {"target": "mongo", "primary_key": ["id"], "ttl": {"field": "landed", "days": 3650},
                        "indexes": [{"columns": ["code"], "unique": True}, {"columns": ["pilot_id", "-landed"]}],
                        "columns": {"id": {"type": "bigint", "nullable": False}, "code": {"type": "text", "nullable": False},
                                    "pilot_id": {"type": "integer"}, "distance": {"type": "double precision"},
                                    "fare": {"type": "numeric(10,2)"}, "landed": {"type": "timestamptz"},
                                    "charter": {"type": "boolean"}},
                        "embed": [{"table": "legs", "on": "flight_id", "as": "legs"}]},
            "legs": {"target": "mongo", "primary_key": ["id"],
                     "columns": {"id": {"type": "bigint", "nullable": False}, "flight_id": {"type": "bigint"},
                                 "airport": {"type": "text"}, "minutes": {"type": "integer"}}}}})


def stage(staging: Staging, rows: int, children: int) -> None:
    """Clean Parquet for `rows` flights with `children` legs each (the transform's output contract)."""
    ids = np.arange(1, rows + 1, dtype=np.int64)
    flights = pa.table({
        "id": ids, "code": pa.array([f"NV{i:07d}" for i in ids]), "pilot_id": (ids % 500).astype(np.int32),
        "distance": (ids % 9000) / 3.0, "fare": pa.array([f"{i % 1000}.{i % 100:02d}" for i in ids]),
        "landed": pa.array(T0_US + ids * 60_000_000, pa.timestamp("us", "UTC")), "charter": ids % 7 == 0,
        "_nova_rowid": ids})
    leg_ids = np.arange(1, rows * children + 1, dtype=np.int64)
    legs = pa.table({
        "id": leg_ids, "flight_id": (leg_ids - 1) // children + 1 if children else leg_ids,
        "airport": pa.array([f"A{i % 300:03d}" for i in leg_ids]), "minutes": (leg_ids % 600).astype(np.int32),
        "_nova_rowid": leg_ids})
    for name, data in (("flights", flights), ("legs", legs)):
        with staging.writer("clean", name, data.schema) as w:
            w.write_table(data)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mongo-uri", required=True)
    ap.add_argument("--rows", type=int, default=50_000)
    ap.add_argument("--children", type=int, default=2)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    client = pymongo.MongoClient(args.mongo_uri, tz_aware=True)
    print(f"server {client.server_info()['version']} at {args.mongo_uri}; {args.rows:,} documents with "
          f"{args.children} embedded children each, batch {MongoTarget().batch_size:,}")
    times: dict[str, list[float]] = {"project": [], "plain": [], "like target": [], "documents": []}
    batch = MongoTarget().batch_size
    with tempfile.TemporaryDirectory(prefix="nova-mongo-bench-") as tmp:
        staging = Staging(tmp)
        stage(staging, args.rows, args.children)
        paths = ["project", "plain", "like target"]
        for run in range(args.runs):
            for path in paths[run % 3:] + paths[: run % 3]:  # rotate the order between runs
                database = f"nova_bench_{uuid.uuid4().hex[:8]}"
                spec = spec_for(args.mongo_uri, database, tmp)
                db = client[database]
                try:
                    if path == "project":
                        res = load_collection(db, spec, "flights", staging)
                        assert res.documents == args.rows and res.quarantined == 0, res
                        times[path].append(res.seconds)
                        continue
                    start = time.perf_counter()
                    docs = [d for b in iter_documents(spec, "flights", staging) for d in b.documents]
                    times["documents"].append(time.perf_counter() - start)
                    if path == "like target":
                        setup_collection(db, spec, "flights")
                    start = time.perf_counter()
                    for i in range(0, len(docs), batch):
                        db["flights"].insert_many(docs[i: i + batch], ordered=False)
                    times[path].append(time.perf_counter() - start)
                    assert db["flights"].count_documents({}) == args.rows
                finally:
                    client.drop_database(database)
    med = {k: statistics.median(v) for k, v in times.items()}
    print("| path | median s | docs/s |\n|---|---:|---:|")
    for label, key in (("plain insert_many (documents ready in memory)", "plain"),
                       ("insert_many into a collection set up like the target (validator, indexes)", "like target"),
                       ("building the documents from Parquet (part of the project's load)", "documents"),
                       ("project load_collection (everything)", "project")):
        print(f"| {label} | {med[key]:.2f} | {args.rows / med[key]:,.0f} |")
    print(f"project / plain insert rate: {med['plain'] / med['project']:.2f}; "
          f"project / like-target insert rate: {med['like target'] / med['project']:.2f}")

if __name__ == "__main__":
    main()
