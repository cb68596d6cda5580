"""Logical MongoDB export/import through pymongo (works with mongomock clients too).

A collection is exported as concatenated BSON documents plus its options and
indexes as canonical Extended JSON, so types survive the round trip.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import bson
from bson import json_util

INSERT_BATCH = 1000
_JSON = json_util.JSONOptions(json_mode=json_util.JSONMode.CANONICAL, tz_aware=True)
_CODEC = bson.CodecOptions(tz_aware=True, tzinfo=bson.tz_util.utc)


def server_version(client) -> str:
    """The server version, or 'mongomock' for the in-process double."""
    if type(client).__module__.startswith("mongomock"):
        return "mongomock"
    return client.server_info()["version"]


def collection_names(db) -> list[str]:
    return sorted(n for n in db.list_collection_names() if not n.startswith("system."))


def collection_metadata(db, name: str) -> dict[str, Any]:
    """Name, type ('collection', 'view', 'timeseries'), options and indexes of one collection."""
    try:
        info = next(iter(db.list_collections(filter={"name": name})), {})
    except NotImplementedError:  # mongomock has no list_collections; its collections carry no options
        info = {}
    indexes = [dict(ix) for ix in db[name].list_indexes()]
    return {"name": name, "type": info.get("type", "collection"), "options": info.get("options", {}), "indexes": indexes}


def dump_metadata(meta: dict[str, Any]) -> bytes:
    """Collection metadata as canonical Extended JSON, so option and index value types survive."""
    return json_util.dumps(meta, json_options=_JSON).encode()


def export_documents(db, name: str, out: BinaryIO) -> int:
    """Write every document of a collection as BSON; returns the count (views export no documents)."""
    count = 0
    for doc in db[name].find({}, sort=[("_id", 1)]):
        out.write(bson.encode(doc))
        count += 1
    return count


def iter_documents(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """Decode concatenated BSON documents from a stream of byte chunks."""
    buf = bytearray()
    for chunk in chunks:
        buf += chunk
        pos = 0
        while len(buf) - pos >= 4:
            size = int.from_bytes(buf[pos:pos + 4], "little")
            if len(buf) - pos < size:
                break
            yield bson.decode(bytes(buf[pos:pos + size]), codec_options=_CODEC)
            pos += size
        del buf[:pos]
    if buf:
        raise ValueError(f"incomplete BSON document at the end ({len(buf)} bytes)")


def recreate_collection(db, metadata: bytes, documents: Iterable[dict[str, Any]]) -> int:
    """Drop the collection, create it with its options, insert the documents, build its indexes."""
    meta = json_util.loads(metadata, json_options=_JSON)
    name = meta["name"]
    db.drop_collection(name)
    if meta["options"]:
        db.create_collection(name, **meta["options"])
    count, batch = 0, []
    for doc in documents:
        batch.append(doc)
        if len(batch) >= INSERT_BATCH:
            count += _insert(db[name], batch)
    count += _insert(db[name], batch)
    for ix in meta["indexes"]:
        if ix["name"] == "_id_":
            continue
        keys = list(ix.pop("key").items())
        ix.pop("v", None)
        ix.pop("ns", None)
        db[name].create_index(keys, **ix)
    if meta["type"] == "collection" and not meta["options"] and name not in db.list_collection_names():
        db.create_collection(name)  # an empty collection without indexes still exists after restore
    return count


def _insert(coll, batch: list[dict[str, Any]]) -> int:
    n = len(batch)
    if batch:
        coll.insert_many(batch, ordered=True)
        batch.clear()
    return n
