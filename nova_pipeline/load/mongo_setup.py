"""MongoDB collections from the spec: `$jsonSchema` validators, indexes, TTL, time series.

Idempotent: an existing collection keeps its data; its validator is updated
with collMod and indexes whose key or options changed are rebuilt. Every
function returns human-readable actions saying what was applied — and what
the server could not apply: the in-process double (mongomock) accepts no
collection options and cannot report them, so there the actions say the
validator / time-series options were *not* applied instead of pretending.
Time-series collections (MongoDB ≥ 5.0) take no validator and no unique
index, and their TTL is the collection option `expireAfterSeconds`.
"""

from __future__ import annotations

from typing import Any

from pymongo.errors import CollectionInvalid, OperationFailure

from nova_pipeline.core.identifiers import mongo_collection, target_columns
from nova_pipeline.load.mongo_documents import bson_type, column_types, document_field
from nova_pipeline.core.spec import Embed, Spec, TableSpec

DAY_SECONDS = 86_400


def setup_collections(db, spec: Spec, tables: list[str] | None = None) -> list[str]:
    """Create or update the collections of the spec's Mongo tables (embedded tables get none); return actions."""
    embedded = spec.embedded_tables()
    actions: list[str] = []
    for name, _ in spec.table_items("mongo"):
        if name not in embedded and (tables is None or name in tables):
            actions += setup_collection(db, spec, name)
    return actions


def setup_collection(db, spec: Spec, table: str, name: str | None = None, *, indexes: bool = True) -> list[str]:
    """Create or update one table's collection (under `name`, e.g. a load's temporary twin); return actions.

    `indexes=False` builds only the unique indexes (they decide, like the validator, which documents
    the server accepts) and leaves the others to a second call after a bulk load: building them once
    over the loaded documents is cheaper than maintaining them per insert (mongomock's TTL index
    costs a scan per insert).
    """
    tspec = spec.tables[table]
    collection = name or mongo_collection(spec, table)
    validator = json_schema(spec, table)
    if collection in db.list_collection_names():
        actions, info = _update(db, collection, tspec, validator)
        timeseries = info is not None and _is_timeseries(info)
    else:
        actions, timeseries = _create(db, collection, tspec, validator)
    wanted = [ix for ix in _indexes(tspec, timeseries) if indexes or ix[2].get("unique")]
    return actions + _ensure_indexes(db[collection], collection, wanted)


def json_schema(spec: Spec, table: str) -> dict[str, Any]:
    """The `$jsonSchema` validator of a table's documents (embedded children included)."""
    return {"$jsonSchema": _object_schema(spec, table, spec.tables[table].embed, top=True)}


def _object_schema(spec: Spec, table: str, embeds: list[Embed], *, top: bool) -> dict[str, Any]:
    tspec = spec.tables[table]
    types = column_types(tspec)
    props: dict[str, Any] = {}
    required: list[str] = ["_id"] if top else []
    key: dict[str, Any] = {}
    for source, target in target_columns(tspec):
        nullable = tspec.columns[source].nullable
        if top and source in tspec.primary_key:
            key[target] = _field_schema(types[target], False)
            continue
        props[target] = _field_schema(types[target], nullable)
        if not nullable:
            required.append(target)
    if top:
        if len(tspec.primary_key) > 1:
            props["_id"] = {"bsonType": "object", "required": list(key), "properties": key}
        else:
            props["_id"] = next(iter(key.values())) if key else {} if tspec.primary_key else {"bsonType": "long"}
    for e in embeds:
        child = _object_schema(spec, e.table, e.embed, top=False)
        props[e.as_] = ({"bsonType": "array", "items": child} if e.mode == "array"
                        else {"anyOf": [child, {"bsonType": "null"}]})
    schema: dict[str, Any] = {"bsonType": "object", "properties": props}
    if required:  # MongoDB rejects an empty `required`
        schema["required"] = required
    return schema


def _field_schema(pg_type: str, nullable: bool) -> dict[str, Any]:
    bt = bson_type(pg_type)
    if bt is None:  # json/jsonb: any JSON value
        return {}
    return {"bsonType": [bt, "null"] if nullable else bt}


def _create(db, collection: str, tspec: TableSpec, validator: dict) -> tuple[list[str], bool]:
    """Create the collection with the strongest options the server accepts; (actions, is_timeseries)."""
    ts = tspec.timeseries
    if ts:
        options: dict[str, Any] = {"timeseries": {"timeField": document_field(tspec, ts.time_field),
                                                  "granularity": ts.granularity}}
        if ts.meta_field:
            options["timeseries"]["metaField"] = document_field(tspec, ts.meta_field)
        if tspec.ttl:
            options["expireAfterSeconds"] = tspec.ttl.days * DAY_SECONDS
        try:
            db.create_collection(collection, **options)
            ttl = f", expireAfterSeconds={options['expireAfterSeconds']}" if tspec.ttl else ""
            return [f"{collection}: created time-series collection {options['timeseries']}{ttl}; "
                    "no validator (time-series collections do not support schema validation)"], True
        except NotImplementedError:
            note = "time-series not supported by this server (mongomock)"
        except OperationFailure as exc:
            note = f"time-series not supported by this server ({exc.details.get('errmsg', exc) if exc.details else exc})"
        actions = [f"{collection}: {note}: plain collection with an index on {options['timeseries']['timeField']}"]
    else:
        actions = []
    try:
        db.create_collection(collection, validator=validator, validationLevel="strict",
                             validationAction=tspec.validation_action)
        actions.append(f"{collection}: created with $jsonSchema validator "
                       f"(validationLevel=strict, validationAction={tspec.validation_action})")
    except NotImplementedError:
        db.create_collection(collection)
        actions.append(f"{collection}: created WITHOUT validator: this server (mongomock) accepts no collection options")
    except CollectionInvalid:  # created concurrently by another worker: update it instead
        return _update(db, collection, tspec, validator)[0], False
    return actions, False


def _collection_info(db, collection: str) -> dict | None:
    """The listCollections entry of a collection; None when the server cannot report it (mongomock)."""
    try:
        res = db.command({"listCollections": 1, "filter": {"name": collection}})
    except NotImplementedError:
        return None
    batch = res["cursor"]["firstBatch"]
    return batch[0] if batch else {}


def _is_timeseries(info: dict) -> bool:
    """Whether a listCollections entry is a time-series collection.

    mongod says so in `type`; SecantusDB 0.7 reports `type: collection` and only
    its options carry `timeseries`, which mongod's entries have as well.
    """
    return info.get("type") == "timeseries" or "timeseries" in info.get("options", {})


def _update(db, collection: str, tspec: TableSpec, validator: dict) -> tuple[list[str], dict | None]:
    info = _collection_info(db, collection)
    if info is None:
        return [f"{collection}: exists; validator not checked: this server (mongomock) cannot report or modify options"], None
    options = info.get("options", {})
    timeseries = _is_timeseries(info)
    if timeseries or tspec.timeseries:
        if timeseries != bool(tspec.timeseries):
            return [f"{collection}: exists as a {'time-series' if timeseries else 'plain'} collection; a collection cannot change to or from "
                    "time-series in place: the next full load re-creates it"], info
        want = tspec.ttl.days * DAY_SECONDS if tspec.ttl else None
        if options.get("expireAfterSeconds") == want or want is None:
            return [f"{collection}: time-series collection unchanged"], info
        db.command({"collMod": collection, "expireAfterSeconds": want})
        now = (_collection_info(db, collection) or {}).get("options", {}).get("expireAfterSeconds")
        if now != want:  # SecantusDB 0.7 answers ok and keeps the old value
            return [f"{collection}: expireAfterSeconds still {now} after collMod (this server does not change it): "
                    f"the next full load re-creates the collection with {want}"], info
        return [f"{collection}: expireAfterSeconds set to {want}"], info
    wanted = {"validator": validator, "validationLevel": "strict", "validationAction": tspec.validation_action}
    if all(options.get(k) == v for k, v in wanted.items()):
        return [f"{collection}: validator unchanged"], info
    db.command({"collMod": collection, **wanted})
    return [f"{collection}: validator updated (validationAction={tspec.validation_action})"], info


def _indexes(tspec: TableSpec, timeseries: bool) -> list[tuple[str, list[tuple[str, int]], dict[str, Any]]]:
    """(name, keys, options) of the indexes the spec asks for."""
    out = []
    for ix in tspec.indexes:
        keys = [(document_field(tspec, c.lstrip("-")), -1 if c.startswith("-") else 1) for c in ix.columns]
        options: dict[str, Any] = {}
        if ix.unique and not timeseries:  # time-series collections reject unique indexes
            options["unique"] = True
        if ix.partial_filter:
            options["partialFilterExpression"] = ix.partial_filter
        out.append((ix.name or "_".join(f"{f}_{d}" for f, d in keys), keys, options))
    if tspec.ttl and not timeseries:
        field = document_field(tspec, tspec.ttl.field)
        out.append((f"ttl_{field}", [(field, 1)], {"expireAfterSeconds": tspec.ttl.days * DAY_SECONDS}))
    if tspec.timeseries and not timeseries:
        ts = tspec.timeseries
        keys = [(document_field(tspec, f), 1) for f in (ts.meta_field, ts.time_field) if f]
        out.append(("timeseries_" + "_".join(f for f, _ in keys), keys, {}))
    return out


def _ensure_indexes(coll, collection: str, indexes) -> list[str]:
    existing = coll.index_information()
    actions = []
    for name, keys, options in indexes:
        have = existing.get(name)
        same = have is not None and [tuple(k) for k in have["key"]] == keys and all(
            have.get(k) == v for k, v in options.items()) and all(
            have.get(k) is None for k in ("unique", "partialFilterExpression", "expireAfterSeconds") if k not in options)
        if same:
            actions.append(f"{collection}: index {name} unchanged")
            continue
        if have is not None:
            coll.drop_index(name)
        coll.create_index(keys, name=name, **options)
        opts = "".join(f", {k}={v}" for k, v in options.items())
        actions.append(f"{collection}: index {name} {'rebuilt' if have else 'created'} on {keys}{opts}")
    return actions
