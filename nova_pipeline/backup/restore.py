"""Restore a verified backup set into named targets."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from nova_pipeline.core import connections
from nova_pipeline.backup import mongo, pgtools
from nova_pipeline.backup.baseline import restore_baseline
from nova_pipeline.backup.crypto import iter_plain
from nova_pipeline.backup.errors import VerificationError
from nova_pipeline.backup.sets import filesystem, load_set
from nova_pipeline.backup.verify import set_key, verify_set


def restore(set_path: str, postgres_url: str | None, mongo_uri: str | None = None, *, key: bytes | None = None,
            mongo_database: str | None = None, accept_unsealed: bool = False) -> dict[str, Any]:
    """Authenticate and verify the set, then make the targets equal to it; returns what was restored.

    PostgreSQL: the set's schemas are dropped and replayed from the dump in one
    transaction (pg_restore --clean --if-exists --no-owner through psql), the
    dump decrypted as a stream (no plaintext file), so objects created after
    the backup disappear. MongoDB: the database gets exactly the set's
    collections (drop + insert + indexes). A target given as None is left
    alone. A set from before manifests were sealed needs accept_unsealed. An
    empty baseline (baseline.py) drops what was created since instead.
    """
    backup = load_set(set_path)
    key = set_key(backup, key)
    check = verify_set(backup.location, key, accept_unsealed=accept_unsealed)
    if not check["ok"]:
        raise VerificationError(f"set {backup.set_id} failed verification, nothing restored: {check['problems'][0]}")
    done: dict[str, Any] = {"set": backup.location, "manifest": check["manifest"]}
    if backup.manifest.get("baseline"):
        return {**done, **restore_baseline(backup, postgres_url, mongo_uri, mongo_database)}
    fs, path = filesystem(backup.location)
    sources = backup.manifest["sources"]
    if postgres_url and "postgres" in sources:
        pg = sources["postgres"]
        major, _ = pgtools.server_info(postgres_url)
        with ExitStack() as stack:
            dump = None
            if pg["file"]:
                raw = stack.enter_context(fs.open(f"{path}/{pg['file']}", "rb"))
                dump = iter_plain(raw, key, pg["file"])
            pgtools.pg_restore(dump, postgres_url, pg["schemas"], pgtools.tool_dir(major))
        done["postgres"] = {"schemas": pg["schemas"], "schemas_restored": pg["schemas_dumped"]}
    if mongo_uri and "mongo" in sources:
        done["mongo"] = _restore_mongo(fs, path, sources["mongo"], mongo_uri, mongo_database, key)
    return done


def _restore_mongo(fs, path: str, info: dict[str, Any], uri: str, database: str | None, key: bytes | None) -> dict:
    db = connections.mongo_database(uri, database or info["database"])
    wanted = {c["name"] for c in info["collections"]}
    for name in mongo.collection_names(db):
        if name not in wanted:  # created after the backup: the restored database holds exactly the set's collections
            db.drop_collection(name)
    counts = {}
    for c in info["collections"]:
        with fs.open(f"{path}/{c['metadata']}", "rb") as f:
            metadata = b"".join(iter_plain(f, key, c["metadata"]))
        with fs.open(f"{path}/{c['bson']}", "rb") as f:
            counts[c["name"]] = mongo.recreate_collection(db, metadata, mongo.iter_documents(iter_plain(f, key, c["bson"])))
    return {"database": db.name, "documents": counts}
