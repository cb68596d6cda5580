"""Source-side facts of one table, read once from staging: row counts, column aggregates, bucket hashes.

The result is a JSON-able dict (Dagster metadata, reports) that the target
checks compare against, so no check re-reads SQLite. Rows are spread over
buckets by the hash of their primary key (of the whole row when there is
none); each bucket holds its row count and the sum of its rows' hashes modulo
2^64 (see `row_hash`). The target is first compared by the totals; only when
they differ are its buckets summed, so the differing bucket — and then the
differing key — is found without moving the table.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from decimal import Context, Decimal
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from nova_pipeline.core.scan_cache import FactsStore
from nova_pipeline.load.mongo_documents import ORPHANS_FILE, ROWID, UNLOADABLE_FILE
from nova_pipeline.core.spec import Embed, Spec
from nova_pipeline.core.staging import Staging
from nova_pipeline.core.identifiers import target_column
from nova_pipeline.validate import canonical as cn
from nova_pipeline.validate import row_hash as rh

FACTS_VERSION = 3
ROWS_PER_BUCKET = 1000
MAX_BUCKETS = 1024
_TEXT_LIMIT = 200
_EXACT = Context(prec=100_000)


def bucket_count(rows: int) -> int:
    """Buckets for a table of `rows` rows: about ROWS_PER_BUCKET rows each, at most MAX_BUCKETS."""
    return max(1, min(MAX_BUCKETS, math.ceil(rows / ROWS_PER_BUCKET)))


def aggregate_value(kind: str, v: Any) -> Any:
    """A min/max/sum in the JSON-able form both sides are compared in."""
    if v is None:
        return None
    if kind in ("float8", "float4"):
        return float(v) if math.isfinite(v) else ("NaN" if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity"))
    if kind == "numeric":
        return cn.numeric_text(str(v))
    if kind in ("text", "char", "uuid") and len(v) > _TEXT_LIMIT:
        return "md5:" + hashlib.md5(v.encode()).hexdigest()
    return int(v) if kind in ("int", "bool", "timestamp", "date", "time") else v


class _Aggregate:
    """count / nulls / min / max / sum of one column over streamed batches."""

    def __init__(self, kind: str):
        self.kind, self.count, self.nulls, self.nans = kind, 0, 0, 0
        self.min = self.max = None
        self.sum: Any = 0 if kind in ("int", "bool", "numeric") else (0.0 if kind.startswith("float") else None)
        self.sum_abs = 0.0

    def _minmax(self, lo, hi) -> None:
        if lo is not None:
            self.min = lo if self.min is None else min(self.min, lo)
            self.max = hi if self.max is None else max(self.max, hi)

    def add(self, arr: pa.Array, canonical: pa.Array | None) -> None:
        self.nulls += arr.null_count
        self.count += len(arr) - arr.null_count
        k = self.kind
        if k == "int":
            mm = pc.min_max(arr)
            self._minmax(mm["min"].as_py(), mm["max"].as_py())
            self.sum += int(pc.sum(arr.cast(pa.decimal128(38, 0))).as_py() or 0)
        elif k in ("float8", "float4"):
            wide = arr.cast(pa.float64())
            nan = pc.is_nan(wide)
            self.nans += pc.sum(nan.cast(pa.int64())).as_py() or 0
            mm = pc.min_max(wide.filter(pc.invert(nan)))
            self._minmax(mm["min"].as_py(), mm["max"].as_py())
            self.sum += pc.sum(wide).as_py() or 0.0
            self.sum_abs += pc.sum(pc.abs(wide.filter(pc.invert(nan)))).as_py() or 0.0
        elif k == "numeric":
            for v in arr.to_pylist():
                if v is not None:
                    d = Decimal(v)
                    if d.is_nan():
                        self.nans += 1
                        continue
                    self._minmax(d, d)
                    self.sum = _EXACT.add(self.sum, d)
        elif k == "bool":
            self.sum += pc.sum(arr.cast(pa.int64())).as_py() or 0
        elif k in ("text", "char", "uuid"):
            mm = pc.min_max(canonical)
            self._minmax(mm["min"].as_py(), mm["max"].as_py())
        elif k in ("timestamp", "date", "time"):
            mm = pc.min_max(cn.sortable(k, arr))
            self._minmax(mm["min"].as_py(), mm["max"].as_py())

    def result(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "count": self.count, "nulls": self.nulls}
        if self.kind in ("json", "bytea"):
            return out
        lo, hi, total = self.min, self.max, self.sum
        if self.nans:  # PostgreSQL orders NaN above every number; a NaN makes the sum NaN
            nan = Decimal("NaN") if self.kind == "numeric" else math.nan
            hi, lo, total = nan, (nan if lo is None else lo), nan
        out.update(min=aggregate_value(self.kind, lo), max=aggregate_value(self.kind, hi))
        if total is not None:
            out["sum"] = aggregate_value(self.kind, total)
        if self.kind.startswith("float"):
            out["sum_abs"] = self.sum_abs
        return out


class BucketHasher:
    """Row hashes and buckets of clean batches, the Python half of the content hash (see `row_hash`).

    A single integer primary key spreads rows by itself (bucket = key mod N);
    other keys go by the XOR of their columns' hashes, rows without a key by
    their own hash.
    """

    def __init__(self, columns: list[cn.Column], pk: list[str], buckets: int):
        self.columns, self.pk, self.buckets = columns, pk, buckets
        self.kinds = {c.name: c.kind for c in columns}
        self.int_key = len(pk) == 1 and self.kinds[pk[0]] == "int"
        self._memos: dict[str, dict[str, str]] = {c.name: {} for c in columns}  # values repeat across batches

    def canonical(self, batch: pa.RecordBatch) -> dict[str, pa.Array]:
        """Canonical texts of the batch's text-hashed columns (their hashes and min/max use them)."""
        return {c.name: cn.arrow_canonical(c.kind, batch.column(c.name), self._memos[c.name]) for c in self.columns
                if c.kind in rh.TEXT_HASHED}

    def column_hashes(self, batch: pa.RecordBatch, canon: dict[str, pa.Array]) -> dict[str, np.ndarray]:
        return {c.name: rh.arrow_column_hash(i, c.kind, batch.column(c.name), canon.get(c.name))
                for i, c in enumerate(self.columns)}

    def bucket_ids(self, batch: pa.RecordBatch, hashes: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(row hashes, bucket of every row) of a batch from its column hashes."""
        rows = rh.arrow_row_hash(list(hashes.values()), batch.num_rows)
        if self.int_key:
            keys = batch.column(self.pk[0]).cast(pa.int64()).fill_null(0).to_numpy(zero_copy_only=False)
            return rows, np.mod(keys, self.buckets).astype(np.int64)
        key = rh.arrow_row_hash([hashes[p] for p in self.pk], batch.num_rows) if self.pk else rows
        return rows, ((key & np.uint64(rh.MODULUS // 2 - 1)) % np.uint64(self.buckets)).astype(np.int64)


def _embedding(spec: Spec, table: str) -> tuple[str, str, list[str], Embed] | None:
    """(root table, parent table, array fields from the root document, embed) when `table` is embedded."""
    def walk(parent: str, embeds: list[Embed], path: list[str]):
        for e in embeds:
            if e.table == table:
                return parent, [*path, e.as_], e
            found = walk(e.table, e.embed, [*path, e.as_])
            if found:
                return found
        return None

    for name, t in spec.table_items():
        found = walk(name, t.embed, [])
        if found:
            return (name, *found)
    return None


def _column_values(staging: Staging, table: str, column: str, partition: str | None) -> list[Any]:
    """A clean column's values, without the rows the MongoDB load quarantined."""
    unloaded = _unloaded_rowids(staging, table, partition)
    cols = [column] if unloaded is None else [column, ROWID]
    return [v for b in staging.read_batches("clean", table, partition, columns=cols)
            for v in _loaded(b, unloaded).column(0).to_pylist()]


def _unloaded_rowids(staging: Staging, table: str, partition: str | list[str] | None,
                     files: tuple[str, ...] = (UNLOADABLE_FILE, ORPHANS_FILE)) -> pa.Array | None:
    """`_nova_rowid`s of clean rows the MongoDB load quarantined (too large, rejected by the server, duplicate
    one-to-one children, orphans, the children of those): they are in the quarantine, not in the target."""
    paths = [p for p in staging.files("quarantine", table, partition) if p.rsplit("/", 1)[-1] in files]
    ids = [json.loads(row).get(ROWID) for p in paths
           for row in staging.parquet_file(p).read(columns=["row"]).column(0).to_pylist()]
    ids = [i for i in ids if i is not None]
    return pa.array(ids, pa.int64()) if ids else None


def _loaded(batch: pa.RecordBatch, unloaded: pa.Array | None) -> pa.RecordBatch:
    if unloaded is None:
        return batch
    return batch.filter(pc.invert(pc.is_in(batch.column(ROWID), value_set=unloaded)))


def _embedding_facts(spec: Spec, table: str, staging: Staging, partition: str | None
                     ) -> tuple[dict[str, Any], str, pa.Array] | None:
    """(facts of the embedding, child column, parent keys) when `table` is embedded into a parent's documents."""
    found = _embedding(spec, table)
    if found is None:
        return None
    root, parent, path, e = found
    pt = spec.tables[parent]
    parent_col = e.parent_key or (pt.primary_key[0] if pt.primary_key else None)
    if parent_col is None:
        raise ValueError(f"table {table!r} is embedded into {parent!r}, which has no primary key and no parent_key")
    names = lambda t, c: target_column(spec.tables[t], c) if spec.tables[t].columns else c  # noqa: E731
    parent_keys = set(_column_values(staging, parent, names(parent, parent_col), partition)) - {None}
    on = names(table, e.on)
    per_parent = Counter(_column_values(staging, table, on, partition))
    quarantined_orphans = _unloaded_rowids(staging, table, partition, (ORPHANS_FILE,))
    orphans = sum(n for k, n in per_parent.items() if k not in parent_keys) + (
        len(quarantined_orphans) if quarantined_orphans is not None else 0)
    expected = sum(min(n, e.limit or n) if e.mode == "array" else 1 for k, n in per_parent.items() if k in parent_keys)
    facts = {"root": root, "parent": parent, "path": path, "mode": e.mode, "expected": expected, "orphans": orphans,
             "limited": e.limit is not None}
    return facts, on, pa.array(list(parent_keys))


def source_facts(spec: Spec, table: str, staging: Staging, *, partition: str | None = None) -> dict[str, Any]:
    """Facts of one table (or partition) from its raw, clean and quarantine Parquet in staging."""
    schema = staging.schema("clean", table, partition)
    columns = cn.table_columns(spec, table, schema)
    missing = [c.name for c in columns if schema is not None and c.name not in schema.names]
    if missing:
        raise ValueError(f"table {table!r}: clean Parquet lacks column(s) {', '.join(missing)}")
    pk = cn.primary_key(spec, table)
    clean_rows = staging.row_count("clean", table, partition)
    hasher = BucketHasher(columns, pk, bucket_count(clean_rows))
    aggs = {c.name: _Aggregate(c.kind) for c in columns}
    counts, sums = np.zeros(hasher.buckets, np.int64), np.zeros(hasher.buckets, np.uint64)
    embedding = _embedding_facts(spec, table, staging, partition)
    unloaded = _unloaded_rowids(staging, table, partition)
    for batch in staging.read_batches("clean", table, partition):
        batch = _loaded(batch, unloaded)
        if embedding:  # an embedded table's target holds only the children that have a parent
            batch = batch.filter(pc.is_in(batch.column(embedding[1]), value_set=embedding[2]))
        canon = hasher.canonical(batch)
        for c in columns:
            aggs[c.name].add(batch.column(c.name), canon.get(c.name))
        hashes, buckets = hasher.bucket_ids(batch, hasher.column_hashes(batch, canon))
        counts += np.bincount(buckets, minlength=hasher.buckets)
        np.add.at(sums, buckets, hashes)  # wraps modulo 2^64
    reasons = Counter()
    for batch in staging.read_batches("quarantine", table, partition, columns=["column", "reason"]):
        reasons.update(f"{c}: {r}" for c, r in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()))
    raw_files = staging.files("raw", table, partition)
    return {
        "version": FACTS_VERSION,
        "table": table,
        "partition": partition,
        "staging": staging.uri,
        "raw_rows": staging.row_count("raw", table, partition) if raw_files else None,
        "clean_rows": clean_rows,
        "quarantined_rows": sum(reasons.values()),
        "quarantine_reasons": dict(reasons.most_common(5)),
        "primary_key": pk,
        "columns": {name: a.result() for name, a in aggs.items()},
        # Row hashes depend on column order; JSON metadata stores may sort mapping keys.
        "column_order": list(aggs),
        "buckets": hasher.buckets,
        "bucket_hashes": [[int(n), int(s)] for n, s in zip(counts, sums)],
        "embedding": embedding[0] if embedding else None,
    }


def _staged_files(staging: Staging, table: str, partition: str | list[str] | None) -> tuple:
    paths = [p for kind in ("raw", "clean", "quarantine") for p in staging.files(kind, table, partition)]
    return tuple((i.path, i.size, i.mtime_ns) for i in staging.fs.get_file_info(paths))


def cached_source_facts(spec: Spec, table: str, staging: Staging, *, partition: str | list[str] | None = None,
                        facts: FactsStore | None = None) -> dict[str, Any]:
    """`source_facts`, kept in `facts` (a RunContext's; by default the staging area's) while the table's staged
    files (paths, sizes, modification times) and its spec are the same: a table's facts are read once it is
    transformed (a range's while it loads), and its checks, in any process, reuse them."""
    key = ("source_facts", FACTS_VERSION, staging.uri, table,
           partition if partition is None or isinstance(partition, str) else tuple(partition))
    stamp = (repr(spec.tables[table]), _staged_files(staging, table, partition))
    store = facts if facts is not None else FactsStore(staging)
    return store.remembered(key, stamp, lambda: source_facts(spec, table, staging, partition=partition))


def facts_shape(spec: Spec, table: str, staging: Staging, *, partition: str | list[str] | None = None) -> dict[str, Any]:
    """What `source_facts` compares, without reading a row: the columns and their kinds, the key, the partition."""
    columns = cn.table_columns(spec, table, staging.schema("clean", table, partition))
    return {"table": table, "partition": partition, "primary_key": cn.primary_key(spec, table),
            "column_order": [c.name for c in columns], "columns": {c.name: {"kind": c.kind} for c in columns}}


def column_facts(spec: Spec, table: str, staging: Staging, column: str, partition: str | None = None) -> dict[str, Any]:
    """The facts of one clean column (count, nulls, min, max, sum), as `source_facts` gives them for every column."""
    columns = cn.table_columns(spec, table, staging.schema("clean", table, partition))
    kind = next(c.kind for c in columns if c.name == column)
    agg = _Aggregate(kind)
    for batch in staging.read_batches("clean", table, partition, columns=[column]):
        arr = batch.column(0)
        agg.add(arr, cn.arrow_canonical(kind, arr) if kind in rh.TEXT_HASHED else None)
    return agg.result()


def source_rows(facts: dict[str, Any]) -> int:
    """Rows the source held: raw rows when exported, else clean + quarantined."""
    raw = facts["raw_rows"]
    return raw if raw is not None else facts["clean_rows"] + facts["quarantined_rows"]
