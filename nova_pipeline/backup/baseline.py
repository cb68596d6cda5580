"""Empty baselines: the pre-migration "backup" of a target that holds none of the spec's rows.

Such a target has nothing to back up, so no key is needed: the set is a
manifest alone (`baseline: true`, no data files, unencrypted) listing what
the target held by name — which schemas existed, their relations, functions
and collations, the MongoDB database's collections. Restoring it drops what
was created since (tables with their identity sequences and indexes, views,
trigger functions, FTS tables, the nova_meta records, collections), drops
schemas that did not exist, and empties the spec's tables and collections
that existed without rows. Extensions (citext) are left installed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from psycopg import sql

from nova_pipeline.backup import mongo
from nova_pipeline.backup.create import PRE_MIGRATION, backup_dest, create_backup, target_schemas
from nova_pipeline.backup.crypto import KEY_HINT, key_from_env
from nova_pipeline.backup.errors import BackupKeyError
from nova_pipeline.backup.sets import (FORMAT, MANIFEST, BackupSet, filesystem, load_set, location_of, new_set_id,
                                       sweep_leftovers, write_json)
from nova_pipeline.backup.workdir import WorkArea
from nova_pipeline.core import connections, target_state
from nova_pipeline.core.identifiers import mongo_collection, pg_table
from nova_pipeline.core.spec import Spec

# Relations, functions and collations of a schema that are not part of an extension, an identity/serial column
# or a partitioned parent (those go with what owns them).
_OBJECTS = """
SELECT CASE WHEN c.relkind IN ('r', 'p') THEN 'TABLE' WHEN c.relkind = 'v' THEN 'VIEW'
            WHEN c.relkind = 'm' THEN 'MATERIALIZED VIEW' WHEN c.relkind = 'S' THEN 'SEQUENCE'
            ELSE 'FOREIGN TABLE' END, c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %(schema)s AND c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                   AND d.deptype IN ('e', 'i', 'a'))
UNION ALL
SELECT 'FUNCTION', format('%%I.%%I(%%s)', n.nspname, p.proname, pg_get_function_identity_arguments(p.oid))
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = %(schema)s
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
UNION ALL
SELECT 'COLLATION', c.collname FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace
 WHERE n.nspname = %(schema)s
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_collation'::regclass AND d.objid = c.oid
                   AND d.deptype = 'e')
"""
# Dependent objects first; CASCADE and IF EXISTS take care of what an earlier drop already removed.
_DROP_ORDER = ("MATERIALIZED VIEW", "VIEW", "FOREIGN TABLE", "TABLE", "SEQUENCE", "FUNCTION", "COLLATION")


def pre_migration_backup(spec: Spec, postgres_url: str | None, mongo_uri: str | None) -> BackupSet:
    """The set `migrate` takes first: a full encrypted set when NOVA_BACKUP_KEY is set; without it, an empty
    baseline when the targets hold none of the spec's rows, else BackupKeyError naming the tables."""
    if key_from_env(required=False):
        return create_backup(spec, postgres_url=postgres_url, mongo_uri=mongo_uri, label=PRE_MIGRATION)
    holding = tables_holding_rows(spec, postgres_url, mongo_uri)
    if holding:
        shown = ", ".join(holding[:5]) + (f" and {len(holding) - 5} more" if len(holding) > 5 else "")
        raise BackupKeyError(f"pre-migration backup: the target already holds rows of {shown}; backing them up needs "
                             f"NOVA_BACKUP_KEY: {KEY_HINT}; or pass --no-backup to migrate without a backup")
    return create_baseline(spec, postgres_url, mongo_uri)


def tables_holding_rows(spec: Spec, postgres_url: str | None, mongo_uri: str | None) -> list[str]:
    """The spec's target tables (schema.table) and collections (db.collection) that hold at least one row."""
    found = []
    if postgres_url and spec.targets.postgres is not None:
        with connections.connect_postgres(postgres_url, autocommit=True) as conn:
            found += [".".join(pg_table(spec, name)) for name in target_state.tables_holding_rows(conn, spec)]
    if mongo_uri and spec.targets.mongo is not None:
        db = connections.mongo_database(mongo_uri, spec.targets.mongo.database)
        found += [f"{db.name}.{mongo_collection(spec, name)}" for name in target_state.collections_holding_rows(db, spec)]
    return found


def create_baseline(spec: Spec, postgres_url: str | None, mongo_uri: str | None, dest: str | None = None) -> BackupSet:
    """Write a pre-migration set that records what the targets hold by name (no data files, no key)."""
    now = datetime.now(UTC)
    location = backup_dest(spec, dest)
    sweep_leftovers(location)
    fs, root = filesystem(location)
    set_id = new_set_id(now)
    sources: dict[str, Any] = {}
    if postgres_url and spec.targets.postgres is not None:
        sources["postgres"] = _postgres_inventory(spec, postgres_url)
    if mongo_uri and spec.targets.mongo is not None:
        db = connections.mongo_database(mongo_uri, spec.targets.mongo.database)
        sources["mongo"] = {"database": db.name, "collections": mongo.collection_names(db),
                            "emptied": [mongo_collection(spec, t) for t, _ in spec.table_items("mongo")]}
    manifest = {
        "format": FORMAT, "set_id": set_id, "created_at": now.isoformat(), "label": PRE_MIGRATION,
        "pre_migration": True, "baseline": True,
        "note": "the targets held none of the spec's rows; restoring drops what was created since",
        "spec": {"path": spec.spec_path}, "sources": sources, "versions": {}, "compression": None,
        "encryption": None, "files": [],
        "verification": {"checked_at": now.isoformat(), "ok": True, "problems": [], "by": "create"},
        "duration_s": 0.0, "seal": None,
    }
    with WorkArea(fs, root, set_id) as work:
        write_json(fs, f"{work.path}/{MANIFEST}", manifest)
        fs.mv(work.path, f"{root}/{set_id}", recursive=True)
    return load_set(location_of(fs, f"{root}/{set_id}"))


def restore_baseline(backup: BackupSet, postgres_url: str | None, mongo_uri: str | None,
                     mongo_database: str | None = None) -> dict[str, Any]:
    """Return the targets to a baseline: drop what was created since, empty the spec's tables that existed."""
    sources, done = backup.manifest["sources"], {}
    if postgres_url and "postgres" in sources:
        done["postgres"] = _drop_since(postgres_url, sources["postgres"])
    if mongo_uri and "mongo" in sources:
        info = sources["mongo"]
        db = connections.mongo_database(mongo_uri, mongo_database or info["database"])
        dropped = [n for n in mongo.collection_names(db) if n not in info["collections"]]
        for name in dropped:
            db.drop_collection(name)
        for name in set(info["emptied"]) & set(info["collections"]):
            db[name].delete_many({})
        done["mongo"] = {"database": db.name, "dropped": dropped, "documents": {}}
    return done


def _postgres_inventory(spec: Spec, url: str) -> dict[str, Any]:
    schemas = target_schemas(spec)
    with connections.connect_postgres(url, autocommit=True) as conn:
        present = [r[0] for r in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", (schemas,))]
        objects = {s: sorted([kind, name] for kind, name in conn.execute(_OBJECTS, {"schema": s})) for s in present}
    emptied = [list(pg_table(spec, t)) for t, _ in spec.table_items("postgres")]
    return {"schemas": schemas, "schemas_present": present, "objects": objects, "emptied": emptied}


def _drop_since(url: str, info: dict[str, Any]) -> dict[str, Any]:
    """In one transaction: drop the schemas that did not exist, the objects created since in those that did,
    and empty the spec's tables that existed."""
    dropped: list[str] = []
    with connections.connect_postgres(url) as conn:
        for schema in info["schemas"]:
            if schema not in info["schemas_present"]:
                if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone():
                    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
                    dropped.append(f"schema {schema}")
                continue
            before = {tuple(o) for o in info["objects"][schema]}
            new = [o for o in conn.execute(_OBJECTS, {"schema": schema}).fetchall() if o not in before]
            for kind, name in sorted(new, key=lambda o: _DROP_ORDER.index(o[0])):
                target = sql.SQL(name) if kind == "FUNCTION" else sql.Identifier(schema, name)  # quoted by format('%I')
                conn.execute(sql.SQL("DROP {} IF EXISTS {} CASCADE").format(sql.SQL(kind), target))
                dropped.append(f"{kind.lower()} {name if kind == 'FUNCTION' else f'{schema}.{name}'}")
        for schema, name in info["emptied"]:
            if ["TABLE", name] in info["objects"].get(schema, []):
                conn.execute(sql.SQL("TRUNCATE {} CASCADE").format(sql.Identifier(schema, name)))
    return {"schemas": info["schemas"], "dropped": dropped}
