"""Phase 3: one SQLite table → raw Parquet in bounded Arrow batches.

Raw contract (docs/architecture.md): source column names; a column holding one
storage class is native (INTEGER → int64, REAL → float64, TEXT/BLOB → binary,
bytes as stored so invalid UTF-8 cannot break the export); a column holding
several is a struct {t: typeof, i, r, b}; a column holding only NULLs is null;
`_nova_rowid` is last (rowid, or the row number in PK order for WITHOUT ROWID
tables). Each field carries `nova.storage` metadata (integer/real/text/blob/mixed/null).

Rows are read through ADBC's SQLite driver, which yields Arrow batches straight
from SQLite. It infers one Arrow type per result column and turns columns of
mixed storage classes into lossy text, so every selected expression is made
uniform first (a per-class CASE for mixed columns) and every batch's types are
checked against the profile before they are written.
"""

from __future__ import annotations

import os
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import adbc_driver_sqlite.dbapi as adbc_sqlite
import pyarrow as pa
import pyarrow.compute as pc

from nova_pipeline.core.scan_cache import FactsStore
from nova_pipeline.extract.snapshot import quote
from nova_pipeline.core.staging import Staging

ROWID = "_nova_rowid"
STORAGE_KEY = b"nova.storage"
MIXED_TYPE = pa.struct([("t", pa.string()), ("i", pa.int64()), ("r", pa.float64()), ("b", pa.binary())])
_NATIVE = {"integer": pa.int64(), "real": pa.float64(), "text": pa.binary(), "blob": pa.binary()}


class ExportError(RuntimeError):
    """The table cannot be exported; the message names the table (and column)."""


@dataclass(frozen=True)
class ExportResult:
    rows: int
    files: int
    bytes: int
    seconds: float


def _connect(sqlite_path: str):
    return adbc_sqlite.connect(f"file:{urllib.parse.quote(os.path.abspath(sqlite_path))}?mode=ro")


def query_rows(conn, sql: str, params: tuple = ()) -> list[tuple]:
    """All rows of one query on an ADBC connection (cursor closed)."""
    cur = conn.cursor()
    try:
        cur.execute(sql, params or None)
        return cur.fetchall()
    finally:
        cur.close()


def _source(conn, table: str, where: tuple[str, tuple] | None) -> tuple[str, str, tuple]:
    """(FROM clause, rowid expression, params): the rowid alias not shadowed by a column, or the PK row number."""
    info = query_rows(conn, f"PRAGMA table_xinfo({quote(table)})")
    if not info:
        raise ExportError(f"{table}: no such table in the source")
    names = {r[1].lower() for r in info}
    where_sql, params = (f" WHERE {where[0]}", tuple(where[1])) if where else ("", ())
    without_rowid = query_rows(conn, f"PRAGMA table_list({quote(table)})")[0][4]
    if not without_rowid:
        alias = next((a for a in ("rowid", "_rowid_", "oid") if a not in names), None)
        if alias is None:
            raise ExportError(f"{table}: columns rowid, _rowid_ and oid shadow the rowid; cannot key rows")
        return f"{quote(table)}{where_sql}", alias, params
    pk = [r[1] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
    order = ", ".join(quote(c) for c in pk) or "1"
    # Numbered over the whole table before filtering, so a window keeps the same numbers as a full export.
    inner = f"(SELECT row_number() OVER (ORDER BY {order}) AS {quote(ROWID)}, * FROM {quote(table)})"
    return f"{inner}{where_sql}", quote(ROWID), params


def storage_classes(conn, columns: list[str], from_sql: str, params: tuple) -> dict[str, set[str]]:
    """Storage classes present in each column (one scan)."""
    if not columns:
        return {}
    aggs = ", ".join(f"group_concat(DISTINCT typeof({quote(c)}))" for c in columns)
    row = query_rows(conn, f"SELECT {aggs} FROM {from_sql}", params)[0]
    return {c: set(found.split(",")) - {"null"} if found else set() for c, found in zip(columns, row)}


def _select_list(columns: list[str], classes: dict[str, set[str]]) -> list[str]:
    exprs = []
    for c in columns:
        q, kinds = quote(c), classes[c]
        if len(kinds) <= 1:
            # CAST AS BLOB keeps TEXT bytes exactly as stored (UTF-8 databases).
            exprs.append(f"CAST({q} AS BLOB)" if kinds & {"text", "blob"} else q)
        else:
            exprs += [f"typeof({q})",
                      f"CASE WHEN typeof({q}) = 'integer' THEN {q} END",
                      f"CASE WHEN typeof({q}) = 'real' THEN {q} END",
                      f"CASE WHEN typeof({q}) IN ('text', 'blob') THEN CAST({q} AS BLOB) END"]
    return exprs


def raw_schema(columns: list[str], classes: dict[str, set[str]]) -> pa.Schema:
    """The raw Parquet schema for columns with these storage classes."""
    fields = []
    for c in columns:
        kinds = classes[c]
        if len(kinds) > 1:
            typ, label = MIXED_TYPE, "mixed"
        elif kinds:
            label = next(iter(kinds))
            typ = _NATIVE[label]
        else:
            typ, label = pa.null(), "null"
        fields.append(pa.field(c, typ, metadata={STORAGE_KEY: label.encode()}))
    return pa.schema([*fields, pa.field(ROWID, pa.int64(), nullable=False)])


def _conform(arr: pa.Array, typ: pa.DataType, table: str, column: str) -> pa.Array:
    """ADBC's inferred type must agree with the profile; an all-NULL batch may come back as any type."""
    if arr.type == typ:
        return arr
    if arr.null_count == len(arr):
        return pa.nulls(len(arr), typ)
    if typ == pa.binary() and pa.types.is_string(arr.type):
        return arr.cast(pa.binary())
    raise ExportError(f"{table}.{column}: driver returned {arr.type}, profile says {typ}; "
                      "did the source change during the export?")


def _to_raw(batch: pa.RecordBatch, schema: pa.Schema, table: str) -> pa.RecordBatch:
    arrays, k = [], 0
    for field in schema:
        name = field.name
        if field.type == MIXED_TYPE:
            t, i, r, b = (batch.column(k + j) for j in range(4))
            t = _conform(t, pa.string(), table, name)
            kids = [t, _conform(i, pa.int64(), table, name), _conform(r, pa.float64(), table, name),
                    _conform(b, pa.binary(), table, name)]
            arrays.append(pa.StructArray.from_arrays(kids, fields=list(MIXED_TYPE),
                                                     mask=pc.equal(t, "null")))
            k += 4
        else:
            arrays.append(_conform(batch.column(k), field.type, table, name))
            k += 1
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def table_storage_classes(sqlite_path: str, table: str, columns: list[str],
                          facts: FactsStore | None = None) -> dict[str, set[str]]:
    """Storage classes present in each column of the whole table (a superset for any of its windows): one scan,
    or none when `facts` holds what the file's profile found (remember_storage_classes)."""
    known = (facts.get_file(sqlite_path, ("storage_classes", table)) if facts else None) or {}
    if not set(columns) <= known.keys():
        with _connect(sqlite_path) as conn:
            known = {**known, **storage_classes(conn, columns, quote(table), ())}
        if facts:
            facts.put_file(sqlite_path, ("storage_classes", table), known)
    return {c: known[c] for c in columns}


def remember_storage_classes(sqlite_path: str | os.PathLike, table: str, classes: dict[str, set[str]],
                             facts: FactsStore) -> None:
    """Record in `facts` what a scan of the unchanged file found, for table_storage_classes."""
    facts.put_file(sqlite_path, ("storage_classes", table), classes)


@contextmanager
def _raw_stream(sqlite_path: str, table: str, columns: list[str], where: tuple[str, tuple] | None,
                classes: dict[str, set[str]] | None, batch_rows: int, extra: str | None = None,
                facts: FactsStore | None = None
                ) -> Iterator[tuple[pa.Schema, Iterator[pa.RecordBatch]]]:
    """(raw schema, source batches): the raw columns, then the rowid, then the `extra` SQL expression if any."""
    if ROWID in columns:
        raise ExportError(f"{table}: a source column is named {ROWID}, which the raw contract reserves")
    with _connect(sqlite_path) as conn:
        if query_rows(conn, "PRAGMA encoding")[0][0] != "UTF-8":
            raise ExportError(f"{table}: source database is not UTF-8 encoded; TEXT bytes would not be UTF-8")
        from_sql, rowid, params = _source(conn, table, where)
        classes = classes or (table_storage_classes(sqlite_path, table, columns, facts) if where is None
                              else storage_classes(conn, columns, from_sql, params))
        schema = raw_schema(columns, classes)
        select = [*_select_list(columns, classes), rowid, *([extra] if extra else [])]
        cur = conn.cursor()
        cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(batch_rows)})
        try:
            cur.execute(f"SELECT {', '.join(select)} FROM {from_sql}", params or None)
            yield schema, cur.fetch_record_batch()
        finally:
            cur.close()


def raw_batches(sqlite_path: str, table: str, columns: list[str], batch_rows: int = 100_000,
                facts: FactsStore | None = None) -> Iterator[pa.RecordBatch]:
    """The whole table's raw batches (`columns`, then the rowid, as export_table writes them), not written."""
    with _raw_stream(sqlite_path, table, columns, None, None, batch_rows, facts=facts) as (schema, batches):
        for batch in batches:
            yield _to_raw(batch, schema, table)


def export_table(sqlite_path: str, table: str, columns: list[str], staging: Staging, *,
                 batch_rows: int = 100_000, partition: str | None = None,
                 where: tuple[str, tuple] | None = None, file_rows: int = 1_000_000,
                 classes: dict[str, set[str]] | None = None, facts: FactsStore | None = None,
                 sink=None) -> ExportResult:
    """Export `columns` of `table` (all rows, or those matching `where` = (SQL, params)) to raw Parquet.

    Files are `raw/<table>[/<partition>]/part-NNNNN.parquet`, a new one every `file_rows` rows;
    earlier files of the same table/partition are removed first, and on failure none are left.
    `classes` (from table_storage_classes), or their record in `facts`, spares the scan that finds each
    column's storage classes. `sink` (e.g. pipeline.handoff.Handoff) gets `start(schema)`, then each raw batch
    by `put(batch)` as it is written.
    """
    start = time.perf_counter()
    staging.clear("raw", table, partition)
    try:
        with _raw_stream(sqlite_path, table, columns, where, classes, batch_rows, facts=facts) as (schema, batches):
            raw = (_to_raw(batch, schema, table) for batch in batches)
            if sink is not None:
                sink.start(schema)
                raw = _passed_on(raw, sink)
            rows, files = staging.write_parts("raw", table, schema, raw, partition, file_rows)
    except BaseException:
        staging.clear("raw", table, partition)
        raise
    size = sum(staging.fs.get_file_info(p).size for p in staging.files("raw", table, partition))
    return ExportResult(rows=rows, files=files, bytes=size, seconds=time.perf_counter() - start)


def _passed_on(batches: Iterator[pa.RecordBatch], sink) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        sink.put(batch)
        yield batch


def export_days(sqlite_path: str, table: str, columns: list[str], staging: Staging, *,
                where: tuple[str, tuple] | None, day_sql: str, keys: dict[int, str], batch_rows: int = 100_000,
                classes: dict[str, set[str]] | None = None) -> dict[str, int]:
    """Export the rows matching `where` in one query, each into the partition of its day; return rows per partition.

    `day_sql` is the SQL of a row's day number and `keys` maps days to partition keys (the days of a month
    share one); rows of other days, or of none, are skipped. Every partition gets one file, maybe empty;
    on failure none is left.
    """
    parts = sorted(set(keys.values()))
    for key in parts:
        staging.clear("raw", table, key)
    try:
        with _raw_stream(sqlite_path, table, columns, where, classes, batch_rows, day_sql) as (schema, batches):
            def keyed() -> Iterator[tuple[str, pa.RecordBatch]]:
                for batch in batches:
                    days, raw = batch.column(batch.num_columns - 1), _to_raw(batch, schema, table)
                    for day in pc.unique(days).drop_null().to_pylist():
                        if day in keys:
                            yield keys[day], raw.filter(pc.equal(days, day))

            return staging.write_keyed("raw", table, schema, keyed(), parts)
    except BaseException:
        for key in parts:
            staging.clear("raw", table, key)
        raise
