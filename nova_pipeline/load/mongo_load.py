"""Clean Parquet → MongoDB: idempotent bulk loads of checked documents.

Re-runs replace, never duplicate:
* full load, strategy "rename" (default): documents go into a fresh temporary
  collection created like the target (validator, indexes), which then replaces
  the target through renameCollection(dropTarget). Readers see the old or the
  new collection, never a mix; a killed run leaves only the temporary
  collection, which the next run drops first. Chosen by measurement
  (docs/performance.md): inserts skip the per-document _id lookup an upsert
  needs, and the swap is atomic.
* full load, strategy "upsert": unordered bulk ReplaceOne upserts keyed by
  `_id`, then deletion of the ids not in the source (the loaded ids are held
  in memory as encoded keys). For targets that must stay in place (other
  writers, no renameCollection privilege).
* time-series collections cannot be renamed: dropped, re-created, filled.
* partition window: the window's documents are deleted, then the partition's
  documents inserted, so a re-run or backfill of a window is safe by design.

Writes are unordered, MongoTarget.batch_size documents per call, with the
spec's write concern, retried per batch with exponential backoff on transient
errors (AutoReconnect, NetworkTimeout, NotPrimaryError). Documents the server
rejects (validator, unique index) are quarantined with their key and the
server's reason (`unloadable.parquet`, like documents over the size limit);
the rest of the batch is written.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pymongo import ReplaceOne, WriteConcern
from pymongo.errors import AutoReconnect, BulkWriteError, NetworkTimeout, NotPrimaryError

from nova_pipeline.core.identifiers import mongo_collection
from nova_pipeline.load.mongo_documents import (
    MAX_DOCUMENT_BYTES, TIMESERIES_MAX_DOCUMENT_BYTES, UNLOADABLE_FILE, document_field, embedded_tables,
    id_key, iter_documents, quarantine_orphans, rejected_rows, split_collections, write_quarantine,
)
from nova_pipeline.load.mongo_setup import setup_collection
from nova_pipeline.core.spec import MongoTarget, Spec
from nova_pipeline.core.staging import Staging

TMP_SUFFIX = "__nova_tmp"
TRANSIENT_ERRORS = (AutoReconnect, NetworkTimeout, NotPrimaryError)
RETRIES = 5
BACKOFF_SECONDS = 0.5
DUPLICATE_KEY = 11000
ID_KEY = {"_id": 1}


class MongoLoadError(RuntimeError):
    """The server did not confirm a write with the spec's write concern; the message names the collection."""


@dataclass(frozen=True)
class MongoLoadResult:
    """What one collection load did."""

    collection: str
    strategy: str
    documents: int
    split_documents: int
    quarantined_orphans: int
    quarantined: int
    rejected: int
    too_large: list[str]
    children_cut: int
    seconds: float
    docs_per_s: float


def write_batch(coll, docs: list[dict], *, upsert: bool, where: str,
                sleep: Callable[[float], None] = time.sleep) -> list[tuple[dict, str]]:
    """One unordered bulk write (inserts, or ReplaceOne upserts by `_id`), retried on transient errors.

    Returns the documents the server rejected (validator, unique index, ...) with its reason; the
    others are written. A write-concern failure raises MongoLoadError.
    """
    attempt = 0
    while True:
        try:
            if upsert:
                coll.bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs], ordered=False)
            else:
                coll.insert_many(docs, ordered=False)
            return []
        except BulkWriteError as exc:
            concern = exc.details.get("writeConcernErrors") or []
            if concern:
                raise MongoLoadError(f"{where}: write concern not satisfied: {concern[0].get('errmsg')}") from None
            # after a transient failure, duplicate-_id errors are documents that failed attempt wrote
            return [(docs[e["index"]], server_reason(e)) for e in exc.details.get("writeErrors", [])
                    if not (attempt and e.get("code") == DUPLICATE_KEY and e.get("keyPattern", ID_KEY) == ID_KEY)]
        except TRANSIENT_ERRORS:
            if attempt == RETRIES:
                raise
            sleep(BACKOFF_SECONDS * 2**attempt)
            attempt += 1


def server_reason(error: dict) -> str:
    """The server's reason for rejecting one document: code, message and the validator rules it broke."""
    rules = "; ".join(dict.fromkeys(_unsatisfied(error.get("errInfo", {}).get("details", {}), "")))
    return f"rejected by the server (code {error.get('code')}): {error.get('errmsg')}" + (f" ({rules})" if rules else "")


def _unsatisfied(node, path: str) -> Iterator[str]:
    """`field: reason` lines from a $jsonSchema failure's errInfo.details."""
    if isinstance(node, list):
        for item in node:
            yield from _unsatisfied(item, path)
    elif isinstance(node, dict):
        path = ".".join(p for p in (path, node.get("propertyName")) if p)
        if node.get("missingProperties"):
            yield f"{path or 'document'}: missing {', '.join(node['missingProperties'])}"
        elif "reason" in node:
            yield f"{path or 'document'}: {node['reason']}" + (f" (found {node['consideredType']})"
                                                                if "consideredType" in node else "")
        for value in node.values():
            if isinstance(value, (list, dict)):
                yield from _unsatisfied(value, path)


class _Destination:
    """One collection being (re)filled: buffers documents into bulk writes and replaces the old content."""

    def __init__(self, db, name: str, mode: str, target: MongoTarget, create: Callable[..., object]):
        self.db, self.final, self.mode, self.batch_size = db, name, mode, target.batch_size
        self.name = name + TMP_SUFFIX if mode == "rename" else name
        self.create, self.bulk = create, mode in ("rename", "recreate")
        if self.bulk:
            db.drop_collection(self.name)
        create(self.name, indexes=not self.bulk)
        self.coll = db.get_collection(self.name, write_concern=WriteConcern(w=target.write_concern))
        self.buffer: list[dict] = []
        self.rejected: list[tuple[dict, str]] = []
        self.count = 0
        self.seen: set[bytes] = set()

    def add(self, docs: list[dict]) -> None:
        self.buffer += docs
        while len(self.buffer) >= self.batch_size:
            self._flush(self.buffer[: self.batch_size])
            del self.buffer[: self.batch_size]

    def _flush(self, docs: list[dict]) -> None:
        if not docs:
            return
        upsert = self.mode == "upsert"
        rejected = write_batch(self.coll, docs, upsert=upsert, where=self.final)
        # the server names the temporary collection; the reason names the target
        self.rejected += [(d, r.replace(f".{self.name} ", f".{self.final} ")) for d, r in rejected]
        if upsert:  # a rejected document's old version is stale: deleted in finish()
            lost = {id(d) for d, _ in rejected}
            self.seen.update(id_key(d["_id"]) for d in docs if id(d) not in lost)
        self.count += len(docs) - len(rejected)

    def finish(self) -> None:
        self._flush(self.buffer)
        self.buffer = []
        if self.bulk:
            self.create(self.name, indexes=True)
        if self.mode == "rename":
            if self.name in self.db.list_collection_names():
                self.db[self.name].rename(self.final, dropTarget=True)
                # mongod keeps options across a rename; SecantusDB 0.7 drops the validator: re-apply (no-op on mongod)
                self.create(self.final, indexes=True)
            else:
                self.db.drop_collection(self.final)
        elif self.mode == "upsert":
            stale = [d["_id"] for d in self.coll.find({}, {"_id": 1}) if id_key(d["_id"]) not in self.seen]
            for i in range(0, len(stale), self.batch_size):
                self.coll.delete_many({"_id": {"$in": stale[i: i + self.batch_size]}})


def load_collection(db, spec: Spec, table: str, staging: Staging, *, partition: str | None = None,
                    window: tuple[datetime, datetime] | None = None,
                    strategy: Literal["rename", "upsert"] = "rename") -> MongoLoadResult:
    """Load a table's clean Parquet (one partition with `window` = its [start, end) range) into its collection."""
    start = time.perf_counter()
    tspec = spec.tables[table]
    target = spec.targets.mongo or MongoTarget()
    name = mongo_collection(spec, table)
    if window is not None:
        mode = "window"
        _delete_window(db, spec, table, window)
    else:
        mode = "recreate" if tspec.timeseries else strategy
    orphans = quarantine_orphans(spec, table, staging) if tspec.embed else 0
    main = _Destination(db, name, mode, target,
                        lambda n, indexes: setup_collection(db, spec, table, name=n, indexes=indexes))
    split_tables = split_collections(spec, table)
    splits = {n: _Destination(db, n, mode, target, lambda n, indexes: None) for n in split_tables}
    quarantined: dict[str, list[dict]] = defaultdict(list)
    too_large: list[str] = []
    cut = 0
    max_bytes = TIMESERIES_MAX_DOCUMENT_BYTES if tspec.timeseries else MAX_DOCUMENT_BYTES
    for batch in iter_documents(spec, table, staging, partition=partition, max_bytes=max_bytes):
        main.add(batch.documents)
        for n, docs in batch.split.items():
            splits[n].add(docs)
        for t, rows in batch.quarantined.items():
            quarantined[t] += rows
        too_large += batch.too_large
        cut += batch.children_cut
    for dest in (main, *splits.values()):
        dest.finish()
    for t, dest, part in ((table, main, partition), *((split_tables[n], d, None) for n, d in splits.items())):
        if dest.rejected:
            rejected = {id_key(doc["_id"]): reason for doc, reason in dest.rejected}
            for qt, rows in rejected_rows(spec, staging, t, rejected, part).items():
                quarantined[qt] += rows
    for t in (table, *embedded_tables(spec, table)):
        write_quarantine(staging, t, UNLOADABLE_FILE, quarantined.get(t, []), partition)
    seconds = time.perf_counter() - start
    return MongoLoadResult(
        collection=name, strategy=mode, documents=main.count, split_documents=sum(d.count for d in splits.values()),
        quarantined_orphans=orphans, quarantined=sum(len(r) for r in quarantined.values()),
        rejected=sum(len(d.rejected) for d in (main, *splits.values())), too_large=too_large,
        children_cut=cut, seconds=seconds, docs_per_s=main.count / seconds if seconds else 0.0)


def _delete_window(db, spec: Spec, table: str, window: tuple[datetime, datetime]) -> None:
    """Delete the window's documents (and their split-out children) so the partition can be inserted again."""
    tspec = spec.tables[table]
    if tspec.partition is None:
        raise ValueError(f"{table}: a window load needs `partition` in the table's spec")
    setup_collection(db, spec, table)
    coll = db[mongo_collection(spec, table)]
    query = {document_field(tspec, tspec.partition.column): {"$gte": window[0], "$lt": window[1]}}
    splits = split_collections(spec, table)
    if splits:
        ids = [d["_id"] for d in coll.find(query, {"_id": 1})]
        for n in splits:
            db[n].delete_many({"_parent": {"$in": ids}})
    coll.delete_many(query)
