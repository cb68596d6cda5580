"""Phase 4: raw Parquet → clean Parquet (target types and names) + quarantine Parquet.

Every spec column is cast with casts.cast_column, batch by batch (memory is
bounded by the raw row-group size). A row with a value that cannot be cast is,
by the spec's `on_bad_row`:

* quarantine (default): left out of clean and written to quarantine, once, with
  every failing column and its reason (see `_failure_fields`);
* fail: the run stops with a TransformError naming table, column, key and reason;
* null_field: kept with that value NULL, and each nulled value recorded in
  quarantine with the reason prefixed "nulled:"; a value that cannot be NULL
  (NOT NULL or primary-key column) still quarantines its row.

rows_in == rows_out + quarantined always holds (nulled rows are in rows_out).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from nova_pipeline.transform.casts import CastOptions, arrow_type, cast_column, cast_options
from nova_pipeline.extract.export import ROWID, STORAGE_KEY
from nova_pipeline.core.identifiers import target_columns
from nova_pipeline.core.spec import ColumnSpec, Spec
from nova_pipeline.core.staging import Staging

QUARANTINE_SCHEMA = pa.schema([("table", pa.string()), ("source_key", pa.string()), ("column", pa.string()),
                               ("raw_value", pa.string()), ("reason", pa.string()), ("row", pa.string())])
NULLED_PREFIX = "nulled: "


class TransformError(RuntimeError):
    """A table cannot be transformed (or on_bad_row is 'fail' and a value could not be cast)."""


@dataclass(frozen=True)
class TransformResult:
    rows_in: int
    rows_out: int
    quarantined: int
    nulled: int
    reasons: dict[str, int] = field(default_factory=dict)  # "column: reason" → rows, most frequent first
    files: int = 0
    seconds: float = 0.0
    facts_seconds: float = 0.0  # the clean rows' source facts for the checks, taken right after (pipeline/table.py)


@dataclass(frozen=True)
class _Column:
    source: str
    target: str
    spec: ColumnSpec
    options: CastOptions
    blob: bool


def _columns(spec: Spec, table: str, raw: pa.Schema) -> list[_Column]:
    t = spec.tables[table]
    if not t.columns:
        raise TransformError(f"{table}: the spec lists no columns (run `nova-pipeline init` to propose them)")
    unknown = [c for c in t.json_columns if c not in t.columns]
    if unknown:
        raise TransformError(f"{table}: json_columns {unknown} are not in the table's columns")
    out = []
    for source, target in target_columns(t):
        col = t.columns[source]
        if source in t.json_columns and col.type not in ("json", "jsonb"):
            col = col.model_copy(update={"type": "jsonb"})
        if source in t.primary_key:
            col = col.model_copy(update={"nullable": False})
        if source not in raw.names:
            raise TransformError(f"{table}.{source}: not in the raw export (re-export the table)")
        meta = raw.field(source).metadata or {}
        out.append(_Column(source, target, col, cast_options(spec, col), meta.get(STORAGE_KEY) == b"blob"))
    return out


def clean_schema(spec: Spec, table: str) -> pa.Schema:
    """Target column names and Arrow types of a table's clean Parquet, `_nova_rowid` last."""
    t = spec.tables[table]
    fields = [pa.field(target, arrow_type("jsonb" if source in t.json_columns and t.columns[source].type
                                          not in ("json", "jsonb") else t.columns[source].type))
              for source, target in target_columns(t)]
    return pa.schema([*fields, pa.field(ROWID, pa.int64(), nullable=False)])


def _json_value(value, blob: bool = False):
    """A raw value as JSON-able data: BLOBs and invalid UTF-8 as x'..' hex, non-finite floats as text."""
    if isinstance(value, dict):  # mixed struct
        if value["t"] == "integer":
            return value["i"]
        if value["t"] == "real":
            return _json_value(value["r"])
        return _json_value(value["b"], blob=value["t"] == "blob") if value["t"] != "null" else None
    if isinstance(value, bytes):
        if not blob:
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                pass
        return f"x'{value.hex()}'"
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return repr(value)
    return value


def _text_value(value, blob: bool) -> str | None:
    """The raw value as text for the quarantine; text holding NUL as x'..' hex (PostgreSQL text cannot hold NUL)."""
    v = _json_value(value, blob)
    if isinstance(v, str) and "\x00" in v:
        return f"x'{v.encode('utf-8').hex()}'"
    return None if v is None else v if isinstance(v, str) else repr(v) if isinstance(v, float) else str(v)


def _dumps(obj) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


class _Batch:
    """One raw batch cast column by column."""

    def __init__(self, batch: pa.RecordBatch, columns: list[_Column]):
        self.batch, self.columns = batch, columns
        self.outcomes = [cast_column(batch.column(c.source), c.spec, c.options, blob=c.blob) for c in columns]

    def any_failure(self, which: list[int]) -> pa.Array:
        """Per row: whether any column among `which` failed."""
        bad = pa.repeat(pa.scalar(False), self.batch.num_rows)
        for k in which:
            if self.outcomes[k].failed is not None:
                bad = pc.or_(bad, self.outcomes[k].failed)
        return bad

    def failures(self, rows: list[int]) -> list[list[tuple[str, str]]]:
        """Per row of `rows`: (source column, reason) of every failing column, in column order."""
        idx = pa.array(rows, pa.int64())
        out: list[list[tuple[str, str]]] = [[] for _ in rows]
        for c, o in zip(self.columns, self.outcomes):
            if o.failed is not None:
                for found, reason in zip(out, o.reasons.take(idx).to_pylist()):
                    if reason is not None:
                        found.append((c.source, reason))
        return out

    def records(self, rows: list[int], failures: list[list[tuple[str, str]]], table: str,
                primary_key: list[str]) -> list[dict]:
        """Quarantine records for `rows` (indices into the batch), each with its failing (column, reason) pairs."""
        raw = self.batch.take(pa.array(rows, pa.int64())).to_pylist()
        blob = {c.source: c.blob for c in self.columns}
        out = []
        for r, failed in zip(raw, failures):
            key = {k: _json_value(r[k], blob.get(k, False)) for k in primary_key} if primary_key \
                else {"rowid": r[ROWID]}
            out.append({"table": table, "source_key": _dumps(key), **_failure_fields(r, failed, blob),
                        "row": _dumps({k: _json_value(v, blob.get(k, False)) for k, v in r.items()})})
        return out


def _failure_fields(row: dict, failed: list[tuple[str, str]], blob: dict[str, bool]) -> dict[str, str | None]:
    """`column`, `raw_value` and `reason` of a quarantine record. One failing column: its name, its raw value as
    text and its reason. Several: the names joined by ", ", a JSON object of each one's raw text, and the
    reasons in the same order joined by "; "."""
    values = {col: _text_value(row[col], blob[col]) for col, _ in failed}
    return {"column": ", ".join(col for col, _ in failed),
            "raw_value": values[failed[0][0]] if len(failed) == 1 else _dumps(values),
            "reason": "; ".join(reason for _, reason in failed)}


def transform_table(spec: Spec, table: str, staging: Staging, *, partition: str | None = None, run_id: str = "",
                    file_rows: int = 1_000_000, raw: tuple[pa.Schema, Iterable[pa.RecordBatch]] | None = None,
                    sink=None) -> TransformResult:
    """Cast a table's raw Parquet into clean Parquet and quarantine Parquet (both replaced; none left on failure).

    `raw` = (schema, batches) casts those batches (as an export hands them over) instead of the staged raw files.
    `sink` (e.g. pipeline.handoff.Handoff) gets `start(clean schema)`, then each clean batch by `put(batch)`.
    `run_id` is accepted so callers can pass the Dagster run for log context; outputs do not depend on it.
    """
    start = time.perf_counter()
    t = spec.tables[table]
    raw_schema, raw_batches = raw or (staging.schema("raw", table, partition), None)
    if raw_schema is None:
        raise TransformError(f"{table}: no raw export in staging (run the export first)")
    if raw_batches is None:
        raw_batches = staging.read_batches("raw", table, partition)
    columns = _columns(spec, table, raw_schema)
    schema = clean_schema(spec, table)
    strict = [k for k, c in enumerate(columns) if not c.spec.nullable]
    loose = [k for k, c in enumerate(columns) if c.spec.nullable]
    counts: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for kind in ("clean", "quarantine"):
        staging.clear(kind, table, partition)
    try:
        with staging.writer("quarantine", table, QUARANTINE_SCHEMA, partition) as qw:
            def clean_batches():
                for batch in raw_batches:
                    out, q, nl = _transform_batch(spec, table, t.primary_key, batch, columns, schema,
                                                  strict, loose, reasons)
                    if q or nl:
                        qw.write_table(pa.Table.from_pylist(q + nl, schema=QUARANTINE_SCHEMA))
                    counts.update(rows_in=batch.num_rows, quarantined=len(q),
                                  nulled=len({r["source_key"] for r in nl}))
                    if sink is not None:
                        sink.put(out)
                    yield out

            if sink is not None:
                sink.start(schema)

            rows_out, files = staging.write_parts("clean", table, schema, clean_batches(), partition, file_rows)
    except BaseException:
        for kind in ("clean", "quarantine"):
            staging.clear(kind, table, partition)
        raise
    rows_in, quarantined, nulled = counts["rows_in"], counts["quarantined"], counts["nulled"]
    assert rows_in == rows_out + quarantined, f"{table}: {rows_in} in != {rows_out} out + {quarantined} quarantined"
    return TransformResult(rows_in=rows_in, rows_out=rows_out, quarantined=quarantined, nulled=nulled,
                           reasons=dict(reasons.most_common()), files=files, seconds=time.perf_counter() - start)


def _transform_batch(spec: Spec, table: str, primary_key: list[str], batch: pa.RecordBatch, columns: list[_Column],
                     schema: pa.Schema, strict: list[int], loose: list[int],
                     reasons: Counter) -> tuple[pa.RecordBatch, list, list]:
    """(clean batch, quarantine records, nulled records) of one raw batch."""
    b = _Batch(batch, columns)
    for c, o in zip(columns, b.outcomes):
        if o.failed is not None:
            for item in pc.value_counts(o.reasons.drop_null()).to_pylist():
                reasons[f"{c.source}: {item['values']}"] += item["counts"]
    nulling = spec.on_bad_row == "null_field"
    # null_field keeps rows whose failures are all in nullable columns; otherwise any failure quarantines.
    bad = b.any_failure(strict if nulling else list(range(len(columns))))
    bad_rows = pc.indices_nonzero(bad).to_pylist()
    q = b.records(bad_rows, b.failures(bad_rows), table, primary_key) if bad_rows else []
    if q and spec.on_bad_row == "fail":
        r = q[0]
        raise TransformError(f"{table}: column {r['column']}: key {r['source_key']}: {r['reason']} "
                             f"(raw value {r['raw_value']!r}; on_bad_row is 'fail')")
    nl: list[dict] = []
    if nulling:
        keep_rows = pc.invert(bad)
        for k in loose:
            o = b.outcomes[k]
            if o.failed is None:
                continue
            rows = pc.indices_nonzero(pc.and_(o.failed, keep_rows)).to_pylist()
            if rows:
                why = [[(columns[k].source, NULLED_PREFIX + r)] for r in o.reasons.take(rows).to_pylist()]
                nl += b.records(rows, why, table, primary_key)
    keep = pc.invert(bad)
    arrays = [o.values for o in b.outcomes] + [batch.column(ROWID)]
    clean = pa.RecordBatch.from_arrays(arrays, schema=schema)
    return clean.filter(keep), q, nl
