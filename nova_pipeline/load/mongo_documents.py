"""MongoDB documents from clean Parquet: faithful BSON values, `_id`s, embedded children, size checks.

Shape: field names are the target column names. A table's primary key becomes
`_id` (one column → its value, several → a sub-document `{col: value}`) and is
not repeated as a field; without a primary key `_id` is the SQLite rowid
(`_nova_rowid`, Int64), which is otherwise dropped. Values are converted
column by column from Arrow: timestamps → UTC dates (BSON keeps milliseconds),
date → midnight UTC, time → "HH:MM:SS.ffffff", json/jsonb text → sub-documents
/ arrays (integers beyond 64 bits → Decimal128), numeric text → Decimal128,
bigint → Int64, bytea → BSON binary, NaN/±Infinity stay doubles.

Embedding (`TableSpec.embed`): children come from the child table's clean
Parquet, grouped by `on` and attached to their parent as an array (sorted by
`sort`, else source order; cut at `limit`) or as one sub-document, recursively.
Memory stays bounded by the parent batch: parents are read one Parquet batch
at a time and, for each batch, the child files are scanned with the filter
`on ∈ keys of this batch` (pyarrow dataset; row-group statistics skip groups
that cannot match, so children stored in parent order are read about once).
Only that batch's children (and theirs) are in memory. Orphan detection holds
one column: the parent table's key values.

Every document is encoded with `bson.encode` before it is handed over; one that
cannot be encoded, or exceeds the size limit, is reported with its key and
quarantined (or, for `too_large: split`, its children move to the collection
`<collection>_<as>` with `_parent` = the parent `_id`).
"""

from __future__ import annotations

import decimal
import functools
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import bson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
from bson import json_util
from bson.decimal128 import Decimal128
from bson.int64 import Int64

from nova_pipeline.core.identifiers import mongo_collection, target_columns
from nova_pipeline.core.spec import Embed, Spec, TableSpec
from nova_pipeline.core.staging import Staging

ROWID = "_nova_rowid"
MAX_DOCUMENT_BYTES = 16 * 1024 * 1024
TIMESERIES_MAX_DOCUMENT_BYTES = 4 * 1024 * 1024  # time-series collections cap documents at 4 MB
ORPHANS_FILE = "orphans.parquet"
UNLOADABLE_FILE = "unloadable.parquet"
QUARANTINE_SCHEMA = pa.schema([(n, pa.string()) for n in ("table", "source_key", "column", "raw_value", "reason", "row")])
BSON_TYPES = {
    "smallint": "int", "integer": "int", "bigint": "long", "double precision": "double", "real": "double",
    "numeric": "decimal", "text": "string", "varchar": "string", "char": "string", "uuid": "string",
    "boolean": "bool", "timestamptz": "date", "timestamp": "date", "date": "date", "time": "string",
    "bytea": "binData",
}
_NOT_ENCODABLE = (bson.errors.InvalidDocument, bson.errors.InvalidStringData, OverflowError)


def bson_type(pg_type: str) -> str | None:
    """The BSON type a column of this target type is stored as (None for json/jsonb: any JSON value)."""
    return BSON_TYPES.get(pg_type.split("(")[0].strip())


def column_types(tspec: TableSpec) -> dict[str, str]:
    """Target column name → target type, json_columns counted as jsonb."""
    return {t: "jsonb" if s in tspec.json_columns else tspec.columns[s].type for s, t in target_columns(tspec)}


def document_field(tspec: TableSpec, column: str) -> str:
    """The document field a source column (or a plain field name) is stored under; primary keys live in `_id`."""
    if column in tspec.primary_key:
        return "_id" if len(tspec.primary_key) == 1 else f"_id.{_target(tspec, column)}"
    return _target(tspec, column)


def _target(tspec: TableSpec, column: str) -> str:
    return dict(target_columns(tspec)).get(column, column)


def _json_int(text: str) -> Any:
    value = int(text)
    if -(2**63) <= value < 2**63:
        return value
    try:
        return Decimal128(text)
    except decimal.Inexact:
        return float(text)


_JSON = json.JSONDecoder(parse_int=_json_int)


def bson_values(column: pa.ChunkedArray | pa.Array, pg_type: str | None, *, where: str,
                keep_invalid_json: bool = False) -> list[Any]:
    """BSON-ready Python values of one Arrow column (`where` names table.column in errors)."""
    base = (pg_type or "").split("(")[0].strip()
    arrow_type = column.type
    if base in ("json", "jsonb"):
        return [None if v is None else _parse_json(v, where, keep_invalid_json) for v in column.to_pylist()]
    if base == "numeric" or pa.types.is_decimal(arrow_type):
        return [None if v is None else _decimal(v, where) for v in column.to_pylist()]
    if pa.types.is_date(arrow_type):
        return pc.cast(column, pa.timestamp("ms", "UTC")).to_pylist()
    if pa.types.is_time(arrow_type):
        return pc.cast(column, pa.string()).to_pylist()
    if base == "bigint" or (not base and pa.types.is_int64(arrow_type)):
        return [None if v is None else Int64(v) for v in column.to_pylist()]
    return column.to_pylist()


def _parse_json(text: str, where: str, keep_invalid: bool) -> Any:
    try:
        return _JSON.decode(text)
    except ValueError:
        if keep_invalid:
            return text
        raise ValueError(f"{where}: invalid JSON text {text[:60]!r} in clean Parquet") from None


@functools.lru_cache(maxsize=65_536)  # amounts repeat; Decimal128 parsing dominates numeric columns
def _decimal128(text: str) -> Decimal128:
    return Decimal128(text)


def _decimal(value: Any, where: str) -> Decimal128:
    try:
        return _decimal128(str(value))
    except (decimal.Inexact, decimal.InvalidOperation):
        raise ValueError(f"{where}: {str(value)[:60]!r} is not representable as Decimal128 (34 digits)") from None


@dataclass
class DocumentBatch:
    """Documents of one parent batch, checked, plus what could not go into them."""

    documents: list[dict] = field(default_factory=list)
    split: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    quarantined: dict[str, list[dict]] = field(default_factory=lambda: defaultdict(list))
    too_large: list[str] = field(default_factory=list)
    children_cut: int = 0


def iter_documents(spec: Spec, table: str, staging: Staging, *, partition: str | None = None,
                   max_bytes: int = MAX_DOCUMENT_BYTES) -> Iterator[DocumentBatch]:
    """Documents of a table's clean Parquet, one DocumentBatch per Parquet batch (bounded memory)."""
    tspec = spec.tables[table]
    for batch in staging.read_batches("clean", table, partition):
        rows = pa.Table.from_batches([batch])
        out = DocumentBatch()
        docs = _documents(spec, staging, table, rows, tspec.embed, out, top=True)
        for i, doc in enumerate(docs):
            _check(spec, staging, table, tspec.embed, rows.slice(i, 1), doc, out, max_bytes)
        yield out


def _documents(spec: Spec, staging: Staging, table: str, rows: pa.Table, embeds: list[Embed],
               out: DocumentBatch, *, top: bool) -> list[dict]:
    tspec = spec.tables[table]
    types = column_types(tspec)
    keep_json = {_target(tspec, s) for s, c in tspec.columns.items() if c.invalid_json == "keep_string"}
    names = [n for n in rows.column_names if n != ROWID]
    values = {n: bson_values(rows[n], types.get(n, "jsonb" if n in tspec.json_columns else None),
                             where=f"{table}.{n}", keep_invalid_json=n in keep_json) for n in names}
    if top:
        pk = [_target(tspec, c) for c in tspec.primary_key]
        if len(pk) == 1:
            ids = values.pop(pk[0])
        elif pk:
            ids = [dict(zip(pk, r)) for r in zip(*(values.pop(k) for k in pk))]
        else:
            ids = [Int64(v) for v in rows[ROWID].to_pylist()]
        values = {"_id": ids, **values}
    fields = list(values)
    docs = [dict(zip(fields, r)) for r in zip(*values.values())] if fields else [{} for _ in range(rows.num_rows)]
    for e in embeds:
        _attach(spec, staging, table, rows, docs, e, out)
    return docs


def _parent_key(spec: Spec, parent: str, e: Embed) -> str:
    tspec = spec.tables[parent]
    if e.parent_key:
        return _target(tspec, e.parent_key)
    if len(tspec.primary_key) != 1:
        raise ValueError(f"{parent}: embed {e.table!r} needs parent_key (the table has no single-column primary key)")
    return _target(tspec, tspec.primary_key[0])


def _read_children(staging: Staging, spec: Spec, e: Embed, keys: pa.Array | pa.ChunkedArray, *,
                   limited: bool = False) -> pa.Table | None:
    """Clean child rows whose `on` is one of `keys`, ordered by (on, sort or source order); `limited`: at most
    `limit` per key."""
    files = staging.files("clean", e.table)
    if not files:
        return None
    ds = staging.dataset(files)
    on = _target(spec.tables[e.table], e.on)
    if on not in ds.schema.names:
        raise ValueError(f"{e.table}: embed column {e.on!r} is not in its clean Parquet")
    try:
        keys = pc.drop_null(pc.unique(keys)).cast(ds.schema.field(on).type)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise ValueError(f"{e.table}.{e.on}: type {ds.schema.field(on).type} cannot hold the parent keys ({keys.type})") from None
    rows = ds.to_table(filter=pc.field(on).isin(keys))
    order = [(on, "ascending")]
    if e.sort:
        order.append((_target(spec.tables[e.table], e.sort.lstrip("-")), "descending" if e.sort.startswith("-") else "ascending"))
    rows = rows.sort_by([*order, (ROWID, "ascending")])
    if limited and e.limit:
        seen: dict[Any, int] = defaultdict(int)
        keep = []
        for i, key in enumerate(rows[on].to_pylist()):
            seen[key] += 1
            if seen[key] <= e.limit:
                keep.append(i)
        rows = rows.take(pa.array(keep, pa.int64()))
    return rows


def _attach(spec: Spec, staging: Staging, parent: str, rows: pa.Table, docs: list[dict], e: Embed,
            out: DocumentBatch) -> None:
    parent_keys = rows[_parent_key(spec, parent, e)]
    children = _read_children(staging, spec, e, parent_keys)
    groups: dict[Any, list[dict]] = defaultdict(list)
    if children is not None and children.num_rows:
        child_docs = _documents(spec, staging, e.table, children, e.embed, out, top=False)
        cap = 1 if e.mode == "document" else e.limit
        extra = []
        for i, (key, doc) in enumerate(zip(children[_target(spec.tables[e.table], e.on)].to_pylist(), child_docs)):
            group = groups[key]
            if cap is not None and len(group) >= cap:
                extra.append(i)
            else:
                group.append(doc)
        if e.mode == "document":
            # one-to-one was declared: a second child is a data error, kept with its reason
            dup = children.take(pa.array(extra, pa.int64()))
            out.quarantined[e.table] += quarantine_rows(
                spec, e.table, dup, e.on, lambda v: f"duplicate: {parent} with {e.on}={v} already has a {e.as_} document")
        else:
            out.children_cut += len(extra)
    for key, doc in zip(parent_keys.to_pylist(), docs):
        found = groups.get(key, [])
        doc[e.as_] = found if e.mode == "array" else (found[0] if found else None)


def _check(spec: Spec, staging: Staging, table: str, embeds: list[Embed], row: pa.Table, doc: dict,
           out: DocumentBatch, max_bytes: int) -> None:
    """Keep `doc` if it encodes within max_bytes; else split its children out or quarantine it."""
    size, error = _encoded_size(doc)
    if error is None and size <= max_bytes:
        out.documents.append(doc)
        return
    key = json_util.dumps(doc["_id"])
    reason = error or f"document too large: {size} bytes > {max_bytes}"
    split = [e for e in embeds if e.too_large == "split"] if error is None else []
    if split:
        collection = mongo_collection(spec, table)
        for e in split:
            del doc[e.as_]
            doc[f"{e.as_}_collection"] = f"{collection}_{e.as_}"
        size, error = _encoded_size(doc)
        if error is None and size <= max_bytes:
            out.too_large.append(f"{table} _id={key}: {reason}; children split into {', '.join(f'{collection}_{e.as_}' for e in split)}")
            out.documents.append(doc)
            for e in split:
                _split_children(spec, staging, table, row, doc["_id"], e, out, max_bytes)
            return
        reason = error or f"document too large: {size} bytes > {max_bytes} even without split children"
    if error is None:
        out.too_large.append(f"{table} _id={key}: {reason}; quarantined")
    out.quarantined[table] += quarantine_rows(spec, table, row, "", lambda _: reason)
    for e in embeds:
        _quarantine_descendants(spec, staging, table, row, e, out, f"parent {table} _id={key} quarantined: {reason}")


def _encoded_size(doc: dict) -> tuple[int, str | None]:
    try:
        return len(bson.encode(doc)), None
    except _NOT_ENCODABLE as exc:
        return 0, f"not BSON-encodable: {exc}"


def _split_children(spec: Spec, staging: Staging, parent: str, row: pa.Table, parent_id: Any, e: Embed,
                    out: DocumentBatch, max_bytes: int) -> None:
    # the same children the array would have held: those past `limit` are already counted as cut
    children = _read_children(staging, spec, e, row[_parent_key(spec, parent, e)], limited=True)
    if children is None or not children.num_rows:
        return
    collection = f"{mongo_collection(spec, parent)}_{e.as_}"
    child_out = DocumentBatch()
    for i, doc in enumerate(_documents(spec, staging, e.table, children, e.embed, child_out, top=True)):
        doc["_parent"] = parent_id
        _check(spec, staging, e.table, e.embed, children.slice(i, 1), doc, child_out, max_bytes)
    out.split[collection] += child_out.documents
    out.too_large += child_out.too_large
    out.children_cut += child_out.children_cut
    for t, rows in child_out.quarantined.items():
        out.quarantined[t] += rows


def _quarantine_descendants(spec: Spec, staging: Staging, parent: str, rows: pa.Table, e: Embed,
                            out: DocumentBatch, reason: str) -> None:
    children = _read_children(staging, spec, e, rows[_parent_key(spec, parent, e)], limited=True)
    if children is None or not children.num_rows:
        return
    out.quarantined[e.table] += quarantine_rows(spec, e.table, children, e.on, lambda _: reason)
    for sub in e.embed:
        _quarantine_descendants(spec, staging, e.table, children, sub, out, reason)


def quarantine_rows(spec: Spec, table: str, rows: pa.Table, column: str,
                    reason: Callable[[Any], str]) -> list[dict]:
    """Quarantine records (the contract's columns) for clean rows; `reason` gets the row's `column` value."""
    if not rows.num_rows:
        return []
    tspec = spec.tables[table]
    pk = tspec.primary_key
    target = _target(tspec, column) if column else None
    records = []
    for r in rows.to_pylist():
        key = {c: r[_target(tspec, c)] for c in pk} if pk else {"rowid": r.get(ROWID)}
        value = r.get(target) if target else None
        records.append({"table": table, "source_key": json_util.dumps(key), "column": column,
                        "raw_value": None if value is None else str(value), "reason": reason(value),
                        "row": json_util.dumps(r)})
    return records


def write_quarantine(staging: Staging, table: str, name: str, records: list[dict],
                     partition: str | None = None) -> None:
    """Write (or, when empty, remove) one quarantine file of a table: re-runs replace it."""
    path = f"{staging.dir('quarantine', table, partition)}/{name}"
    if records:
        with staging.writer("quarantine", table, QUARANTINE_SCHEMA, partition, name=name) as w:
            w.write_table(pa.Table.from_pylist(records, schema=QUARANTINE_SCHEMA))
    elif staging.fs.get_file_info(path).type != pafs.FileType.NotFound:
        staging.fs.delete_file(path)


def quarantine_orphans(spec: Spec, table: str, staging: Staging) -> int:
    """Write `orphans.parquet` for every table embedded (at any depth) into `table`; return the orphan count.

    A child is an orphan when no attached parent row has its key (a grandchild
    whose parent row is itself an orphan is an orphan too).
    """
    tspec = spec.tables[table]
    total = 0
    for e in tspec.embed:
        key = _parent_key(spec, table, e)
        chunks = [b.column(0) for b in staging.read_batches("clean", table, columns=[key])]
        keys = pa.chunked_array(chunks).combine_chunks() if chunks else pa.array([])
        total += _orphans(spec, staging, table, e, keys)
    return total


def _orphans(spec: Spec, staging: Staging, parent: str, e: Embed, parent_keys: pa.Array) -> int:
    ctspec = spec.tables[e.table]
    on = _target(ctspec, e.on)
    pk = _parent_key(spec, parent, e)
    records: list[dict] = []
    attached: dict[str, list[pa.Array]] = defaultdict(list)
    for batch in staging.read_batches("clean", e.table):
        try:
            hit = pc.fill_null(pc.is_in(batch[on], value_set=parent_keys.cast(batch.schema.field(on).type)), False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise ValueError(f"{e.table}.{e.on}: type {batch.schema.field(on).type} cannot hold {parent} keys ({parent_keys.type})") from None
        orphans = pa.Table.from_batches([batch.filter(pc.invert(hit))])
        records += quarantine_rows(spec, e.table, orphans, e.on, lambda v: f"orphan: no {parent} with {pk}={v}")
        kept = batch.filter(hit)
        for sub in e.embed:
            attached[sub.table].append(kept[_parent_key(spec, e.table, sub)])
    write_quarantine(staging, e.table, ORPHANS_FILE, records)
    total = len(records)
    for sub in e.embed:
        chunks = attached[sub.table]
        keys = pa.chunked_array(chunks).combine_chunks() if chunks else pa.array([], pa.int64())
        total += _orphans(spec, staging, e.table, sub, keys)
    return total


def split_collections(spec: Spec, table: str) -> dict[str, str]:
    """Collections that `too_large: split` may fill for a table's documents (any depth) → the table they hold."""
    def walk(parent: str, embeds: list[Embed]) -> Iterator[tuple[str, str]]:
        for e in embeds:
            if e.too_large == "split":
                yield f"{mongo_collection(spec, parent)}_{e.as_}", e.table
            yield from walk(e.table, e.embed)
    return dict(walk(table, spec.tables[table].embed))


def rejected_rows(spec: Spec, staging: Staging, table: str, rejected: dict[bytes, str],
                  partition: str | None = None) -> dict[str, list[dict]]:
    """Quarantine records (table → records) for the clean rows behind documents the server rejected, and
    for the rows embedded in them; `rejected` maps `id_key(_id)` to the server's reason."""
    tspec = spec.tables[table]
    out = DocumentBatch()
    for batch in staging.read_batches("clean", table, partition):
        rows = pa.Table.from_batches([batch])
        for i, _id in enumerate(_document_ids(tspec, rows)):
            reason = rejected.get(id_key(_id))
            if reason is None:
                continue
            row = rows.slice(i, 1)
            out.quarantined[table] += quarantine_rows(spec, table, row, "", lambda _: reason)
            for e in tspec.embed:
                _quarantine_descendants(spec, staging, table, row, e, out,
                                        f"parent {table} _id={json_util.dumps(_id)} rejected: {reason}")
    return out.quarantined


def _document_ids(tspec: TableSpec, rows: pa.Table) -> list[Any]:
    """The `_id`s `_documents` gives these clean rows."""
    types = column_types(tspec)
    pk = [_target(tspec, c) for c in tspec.primary_key]
    if not pk:
        return [Int64(v) for v in rows[ROWID].to_pylist()]
    values = [bson_values(rows[k], types.get(k), where=k) for k in pk]
    return values[0] if len(pk) == 1 else [dict(zip(pk, r)) for r in zip(*values)]


def id_key(value: Any) -> bytes:
    """An `_id` as comparable bytes (BSON keeps int32 and Int64 apart, as the server does)."""
    return bson.encode({"k": value})


def embedded_tables(spec: Spec, table: str) -> list[str]:
    """Tables embedded (at any depth) into a table's documents."""
    def walk(embeds: list[Embed]) -> Iterator[str]:
        for e in embeds:
            yield e.table
            yield from walk(e.embed)
    return list(dict.fromkeys(walk(spec.tables[table].embed)))
