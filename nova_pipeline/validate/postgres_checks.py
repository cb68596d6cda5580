"""Checks of one PostgreSQL target table against its source facts, pushed down as SQL.

Nothing pulls a table into Python: counts, aggregates and per-bucket hashes are
computed by PostgreSQL; only the rows of buckets whose hash differs are
fetched, to name the differing primary keys.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa
from psycopg import sql

from nova_pipeline.core.identifiers import pg_table, target_column
from nova_pipeline.load.postgres_ddl import check_name
from nova_pipeline.load.postgres_load import partition_window
from nova_pipeline.core.spec import Spec
from nova_pipeline.core.staging import Staging
from nova_pipeline.validate import canonical as cn
from nova_pipeline.core import results as r
from nova_pipeline.validate import row_hash as rh
from nova_pipeline.core.results import CheckResult, format_key
from nova_pipeline.validate.source_facts import BucketHasher, aggregate_value, source_rows
from nova_pipeline.validate.tolerance import check_quarantine_tolerance

SAMPLE = 10
MAX_DRILL_BUCKETS = 32
FLOAT_SUM_TOLERANCE = 1e-9  # relative to the sum of |x|: summation order differs between the two sides


class TargetTable:
    """What every check needs: the target relation, its columns and the partition filter."""

    def __init__(self, conn: psycopg.Connection, spec: Spec, table: str, facts: dict[str, Any]):
        self.conn, self.spec, self.name, self.facts = conn, spec, table, facts
        self.schema, self.relname = pg_table(spec, table)
        self.ref = sql.Identifier(self.schema, self.relname)
        self.columns = [cn.Column(n, facts["columns"][n]["kind"]) for n in facts["column_order"]]
        self.kinds = {c.name: c.kind for c in self.columns}
        self.pk = facts["primary_key"]
        self.where = _partition_filter(spec, table, facts.get("partition"))
        self.rel = sql.SQL("(SELECT * FROM {}{}) x").format(self.ref, self.where)

    def rows(self, query: sql.Composable, params: Any = None) -> list[tuple]:
        return self.conn.execute(query, params).fetchall()

    def key(self, values: tuple) -> dict[str, Any]:
        return dict(zip(self.pk, values))


def _partition_filter(spec: Spec, table: str, partition: str | list[str] | None) -> sql.Composable:
    """`WHERE` clause of a partition's (or a list of partitions') time window (empty for the whole table)."""
    part = spec.tables[table].partition
    if partition is None or part is None:
        return sql.SQL("")
    start, end = partition_window(spec, table, partition)
    col = sql.Identifier(target_column(spec.tables[table], part.column) if spec.tables[table].columns else part.column)
    return sql.SQL(" WHERE {c} >= {s} AND {c} < {e}").format(c=col, s=sql.Literal(start), e=sql.Literal(end))


def _timed(fn, *args) -> CheckResult:
    start = time.perf_counter()
    res = fn(*args)
    res.metadata["seconds"] = round(time.perf_counter() - start, 4)
    return res


def target_aggregates(t: TargetTable) -> dict[str, Any]:
    """One scan: total rows, the row hash sum and count/min/max/sum per column, in the form the facts hold."""
    parts: list[sql.Composable] = [sql.SQL("count(*)"), sql.SQL("sum({})").format(_row_hash(t))]
    for c in t.columns:
        col, k = sql.Identifier(c.name), c.kind
        lo = hi = total = sql.NULL
        if k in ("int", "float8", "float4"):
            lo, hi = sql.SQL("min({})").format(col), sql.SQL("max({})").format(col)
            total = sql.SQL("sum({})" if k == "int" else "sum({}::float8)").format(col)
        elif k == "numeric":
            lo, hi, total = (sql.SQL("trim_scale({}({}::numeric))::text").format(sql.SQL(f), col)
                             for f in ("min", "max", "sum"))
        elif k in ("text", "char", "uuid"):
            e = cn.sql_canonical(k, col)
            lo, hi = sql.SQL('min({} COLLATE "C")').format(e), sql.SQL('max({} COLLATE "C")').format(e)
        elif k == "bool":
            total = sql.SQL("count(*) FILTER (WHERE {})").format(col)
        elif k in ("timestamp", "time"):
            lo, hi = (sql.SQL("(extract(epoch FROM {}({})) * 1000000)::bigint").format(sql.SQL(f), col) for f in ("min", "max"))
        elif k == "date":
            lo, hi = (sql.SQL("{}({}) - DATE '1970-01-01'").format(sql.SQL(f), col) for f in ("min", "max"))
        parts += [sql.SQL("count({})").format(col), lo, hi, total]
    with t.conn.transaction():
        t.conn.execute("SET LOCAL TimeZone = 'UTC'")  # timestamptz hashes take the UTC wall clock
        row = t.rows(sql.SQL("SELECT {} FROM {}{}").format(sql.SQL(", ").join(parts), t.ref, t.where))[0]
    out: dict[str, Any] = {"rows": row[0], "hash_sum": rh.hash_sum(row[1]), "columns": {}}
    for i, c in enumerate(t.columns):
        count, lo, hi, total = row[2 + 4 * i: 6 + 4 * i]
        agg = {"count": count, "nulls": row[0] - count}
        if c.kind not in ("json", "bytea"):
            agg.update(min=aggregate_value(c.kind, lo), max=aggregate_value(c.kind, hi))
            if total is not None or c.kind in ("int", "bool", "numeric", "float8", "float4"):
                agg["sum"] = aggregate_value(c.kind, total if total is not None else 0)
        out["columns"][c.name] = agg
    return out


def _same_sum(kind: str, src: dict[str, Any], tgt: Any) -> bool:
    a = src.get("sum")
    if kind.startswith("float") and isinstance(a, float) and isinstance(tgt, float):
        return math.isclose(a, tgt, rel_tol=0, abs_tol=FLOAT_SUM_TOLERANCE * max(src.get("sum_abs", 0.0), 1e-300))
    return a == tgt


def check_row_reconciliation(t: TargetTable, agg: dict[str, Any]) -> CheckResult:
    f = t.facts
    src, q, loaded = source_rows(f), f["quarantined_rows"], agg["rows"]
    meta = {"source_rows": src, "loaded_rows": loaded, "quarantined_rows": q, "clean_rows": f["clean_rows"]}
    if f["raw_rows"] is not None and f["raw_rows"] != f["clean_rows"] + q:
        return CheckResult(t.name, r.ROW_RECONCILIATION, False,
                           f"{r.ROW_RECONCILIATION}: staging lost rows: raw {f['raw_rows']} ≠ clean {f['clean_rows']} "
                           f"+ quarantined {q}; re-run the transform of {t.name}", metadata=meta)
    diff = src - loaded - q
    if diff == 0:
        return CheckResult(t.name, r.ROW_RECONCILIATION, True,
                           f"source {src} = loaded {loaded} + quarantined {q}", metadata=meta)
    what = f"{diff} row(s) missing" if diff > 0 else f"{-diff} row(s) too many"
    return CheckResult(t.name, r.ROW_RECONCILIATION, False,
                       f"{r.ROW_RECONCILIATION}: source {src} ≠ loaded {loaded} + quarantined {q}: {what} in "
                       f"{t.schema}.{t.relname} (content_hash names the keys)", metadata=meta)


def _enforcing_constraint(t: TargetTable, kinds: str, columns: list[str], parent: tuple[str, str] | None = None) -> str | None:
    """Name of a validated constraint of type `kinds` on exactly `columns` (PostgreSQL then guarantees the check)."""
    rows = t.rows(sql.SQL(
        "SELECT c.conname, array(SELECT a.attname::text FROM unnest(c.conkey) k JOIN pg_attribute a "
        "ON a.attrelid = c.conrelid AND a.attnum = k ORDER BY a.attname), "
        "array(SELECT a.attnotnull FROM unnest(c.conkey) k JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k), "
        "c.confrelid FROM pg_constraint c WHERE c.conrelid = to_regclass(%s) AND c.contype = ANY(%s) AND c.convalidated"),
        (t.ref.as_string(t.conn), list(kinds)))
    parent_oid = None
    if parent is not None:
        parent_oid = t.rows(sql.SQL("SELECT to_regclass(%s)::oid"), (sql.Identifier(*parent).as_string(t.conn),))[0][0]
    for name, cols, notnull, confrelid in rows:
        if sorted(columns) == cols and (parent is not None or all(notnull)) and (parent is None or confrelid == parent_oid):
            return name
    return None


def check_primary_key(t: TargetTable) -> CheckResult:
    if not t.pk:
        return CheckResult(t.name, r.PRIMARY_KEY, True, "no primary key declared; nothing to check")
    enforced = _enforcing_constraint(t, "pu", t.pk)
    if enforced:
        return CheckResult(t.name, r.PRIMARY_KEY, True, f"unique and not null, enforced by constraint {enforced}")
    cols = sql.SQL(", ").join(map(sql.Identifier, t.pk))
    any_null = sql.SQL(" OR ").join(sql.SQL("{} IS NULL").format(sql.Identifier(c)) for c in t.pk)
    nulls = t.rows(sql.SQL("SELECT count(*) FROM {} WHERE {}").format(t.rel, any_null))[0][0]
    dups = t.rows(sql.SQL(
        "SELECT {cols}, n, count(*) OVER (), sum(n - 1) OVER () FROM (SELECT {cols}, count(*) AS n FROM {t} "
        "GROUP BY {cols} HAVING count(*) > 1) d ORDER BY n DESC LIMIT {k}").format(
        cols=cols, t=t.rel, k=sql.Literal(SAMPLE)))
    keys = [t.key(row[:len(t.pk)]) for row in dups]
    extra = int(dups[0][-1]) if dups else 0
    meta = {"null_keys": nulls, "duplicate_keys": dups[0][-2] if dups else 0, "extra_rows": extra}
    if not nulls and not dups:
        return CheckResult(t.name, r.PRIMARY_KEY, True, f"({', '.join(t.pk)}) unique and not null", metadata=meta)
    parts = []
    if dups:
        parts.append(f"{meta['duplicate_keys']} duplicated key(s) ({extra} extra row(s)): "
                     + "; ".join(format_key(k) for k in keys[:5]))
    if nulls:
        parts.append(f"{nulls} row(s) with a NULL key column")
    return CheckResult(t.name, r.PRIMARY_KEY, False, f"{r.PRIMARY_KEY}: " + ", ".join(parts), keys, metadata=meta)


def _sample_keys(t: TargetTable, condition: sql.Composable, extra: list[str]) -> tuple[int, list[dict[str, Any]]]:
    """(count, up to SAMPLE keys + `extra` columns) of rows matching `condition`."""
    shown = t.pk + [c for c in extra if c not in t.pk]
    cols = sql.SQL(", ").join(sql.SQL("x.{}").format(sql.Identifier(c)) for c in shown)
    rows = t.rows(sql.SQL("SELECT {cols}, count(*) OVER () FROM {rel} WHERE {cond} LIMIT {k}").format(
        cols=cols, rel=t.rel, cond=condition, k=sql.Literal(SAMPLE)))
    return (rows[0][-1] if rows else 0), [dict(zip(shown, row[:-1])) for row in rows]


def check_not_null(t: TargetTable, agg: dict[str, Any]) -> CheckResult:
    ts = t.spec.tables[t.name]
    declared = list(dict.fromkeys(t.pk + [target_column(ts, s) for s, c in ts.columns.items() if not c.nullable]))
    bad = {c: agg["columns"][c]["nulls"] for c in declared if agg["columns"][c]["nulls"]}
    if not bad:
        return CheckResult(t.name, r.NOT_NULL, True, f"no NULL in {len(declared)} NOT NULL column(s)",
                           metadata={"columns": declared})
    keys: list[dict[str, Any]] = []
    for c in bad:
        keys += _sample_keys(t, sql.SQL("x.{} IS NULL").format(sql.Identifier(c)), [])[1] if t.pk else []
    text = ", ".join(f"{n} NULL(s) in {c}" for c, n in bad.items())
    where = f" ({'; '.join(format_key(k) for k in keys[:5])})" if keys else ""
    return CheckResult(t.name, r.NOT_NULL, False, f"{r.NOT_NULL}: {text}{where}", keys[:SAMPLE], metadata={"nulls": bad})


def check_foreign_keys(t: TargetTable) -> CheckResult:
    ts, found, keys, notes = t.spec.tables[t.name], {}, [], []
    for fk in ts.foreign_keys:
        parent = t.spec.tables[fk.references]
        if parent.target != "postgres":
            notes.append(f"{fk.references} is not in PostgreSQL")
            continue
        child_cols = [target_column(ts, c) if ts.columns else c for c in fk.columns]
        parent_cols = [target_column(parent, c) if parent.columns else c for c in fk.referenced_columns]
        label = f"{t.relname}({', '.join(child_cols)}) → {fk.references}({', '.join(parent_cols)})"
        pref = pg_table(t.spec, fk.references)
        if _enforcing_constraint(t, "f", child_cols, pref):
            found[label] = 0
            continue
        cond = sql.SQL("{notnull} AND NOT EXISTS (SELECT 1 FROM {p} p WHERE {match})").format(
            notnull=sql.SQL(" AND ").join(sql.SQL("x.{} IS NOT NULL").format(sql.Identifier(c)) for c in child_cols),
            p=sql.Identifier(*pref),
            match=sql.SQL(" AND ").join(sql.SQL("p.{} = x.{}").format(sql.Identifier(pc_), sql.Identifier(cc))
                                        for pc_, cc in zip(parent_cols, child_cols)))
        n, sample = _sample_keys(t, cond, child_cols)
        found[label] = n
        keys += sample
    orphans = {k: n for k, n in found.items() if n}
    meta = {"orphans": found, "skipped": notes}
    if not orphans:
        note = f"; skipped: {', '.join(notes)}" if notes else ""
        return CheckResult(t.name, r.FOREIGN_KEYS, True, f"no orphans in {len(found)} foreign key(s){note}", metadata=meta)
    text = "; ".join(f"{n} orphan(s) in {k}" for k, n in orphans.items())
    return CheckResult(t.name, r.FOREIGN_KEYS, False,
                       f"{r.FOREIGN_KEYS}: {text}: {'; '.join(format_key(k) for k in keys[:5])}", keys[:SAMPLE], metadata=meta)


def check_check_constraints(t: TargetTable) -> CheckResult:
    """Rows breaking a translated CHECK of the spec (the constraint is then added NOT VALID): counted in one scan
    for all CHECKs no validated constraint guarantees, and sampled by key; a CHECK PostgreSQL cannot evaluate
    is named with its error."""
    ts = t.spec.tables[t.name]
    untranslated = [c.sqlite or "" for c in ts.checks if c.sql is None]
    checks = {check_name(t.spec, t.name, i): c.sql for i, c in enumerate(ts.checks) if c.sql is not None}
    found = {n: 0 for n in checks if _validated_check(t, n)}
    pending = {n: cond for n, cond in checks.items() if n not in found}
    errors: dict[str, str] = {}
    if pending:
        counts = sql.SQL(", ").join(sql.SQL("count(*) FILTER (WHERE NOT ({}))").format(sql.SQL(c)) for c in pending.values())
        try:
            with t.conn.transaction():
                found.update(zip(pending, t.rows(sql.SQL("SELECT {} FROM {}").format(counts, t.rel))[0]))
        except psycopg.Error:  # one of them does not run in PostgreSQL: count them one by one
            for name, cond in pending.items():
                try:
                    with t.conn.transaction():
                        found[name] = t.rows(sql.SQL("SELECT count(*) FROM {} WHERE NOT ({})").format(
                            t.rel, sql.SQL(cond)))[0][0]
                except psycopg.Error as e:
                    errors[name] = str(e).strip().splitlines()[0]
    keys = [k for name, n in found.items() if n and name in pending
            for k in _sample_keys(t, sql.SQL("NOT ({})").format(sql.SQL(pending[name])), [])[1]]
    meta = {"violations": found, "not_translated": untranslated, "errors": errors}
    note = f"; {len(untranslated)} not translated: {'; '.join(untranslated)}" if untranslated else ""
    broken = {k: n for k, n in found.items() if n}
    if not broken and not errors:
        return CheckResult(t.name, r.CHECK_CONSTRAINTS, True, f"no row breaks {len(found)} CHECK(s){note}", metadata=meta)
    text = "; ".join([f"{n} row(s) break {k}" for k, n in broken.items()] + [f"{k} cannot run: {e}" for k, e in errors.items()])
    shown = f": {'; '.join(format_key(k) for k in keys[:5])}" if keys else ""
    return CheckResult(t.name, r.CHECK_CONSTRAINTS, False, f"{r.CHECK_CONSTRAINTS}: {text}{shown}{note}",
                       keys[:SAMPLE], "WARN", meta)


def _validated_check(t: TargetTable, name: str) -> bool:
    return t.rows(sql.SQL("SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(%s) AND conname = %s"
                          " AND contype = 'c' AND convalidated)"), (t.ref.as_string(t.conn), name))[0][0]


def check_column_aggregates(t: TargetTable, agg: dict[str, Any]) -> CheckResult:
    diffs: dict[str, dict[str, Any]] = {}
    for c in t.columns:
        src, tgt = t.facts["columns"][c.name], agg["columns"][c.name]
        for stat, value in tgt.items():
            same = _same_sum(c.kind, src, value) if stat == "sum" else src.get(stat) == value
            if not same:
                diffs.setdefault(c.name, {})[stat] = {"source": src.get(stat), "target": value}
    if not diffs:
        return CheckResult(t.name, r.COLUMN_AGGREGATES, True,
                           f"count, nulls, min, max, sum equal in {len(t.columns)} column(s)")
    text = "; ".join(f"{col}: " + ", ".join(f"{s} {v['source']!r} → {v['target']!r}" for s, v in d.items())
                     for col, d in diffs.items())
    return CheckResult(t.name, r.COLUMN_AGGREGATES, False, f"{r.COLUMN_AGGREGATES}: {text}", metadata={"differences": diffs})


def _column_hashes(t: TargetTable) -> dict[str, sql.Composable]:
    return {c.name: rh.sql_column_hash(i, c.kind, sql.Identifier(c.name)) for i, c in enumerate(t.columns)}


def _row_hash(t: TargetTable) -> sql.Composable:
    return rh.sql_row_hash(list(_column_hashes(t).values()))


def _hash_relations(t: TargetTable) -> tuple[sql.Composable, sql.Composable]:
    """(relation of canonical columns c0.. with row hash h, bucket expression) — see BucketHasher."""
    hasher = BucketHasher(t.columns, t.pk, t.facts["buckets"])
    hashes = _column_hashes(t)
    n = sql.Literal(t.facts["buckets"])
    if hasher.int_key:
        bucket = sql.SQL("mod(mod(coalesce({k}::bigint, 0), {n}) + {n}, {n})").format(k=sql.Identifier(t.pk[0]), n=n)
    else:
        key = rh.sql_row_hash([hashes[p] for p in t.pk]) if t.pk else rh.sql_row_hash(list(hashes.values()))
        bucket = sql.SQL("mod({k} & {m}, {n})").format(k=key, m=sql.Literal(rh.MODULUS // 2 - 1), n=n)
    rel = sql.SQL("SELECT {h} AS h, {b} AS b, {cols} FROM {t}{w}").format(
        h=rh.sql_row_hash(list(hashes.values())), b=bucket, t=t.ref, w=t.where,
        cols=sql.SQL(", ").join(sql.SQL("{} AS {}").format(cn.sql_canonical(c.kind, sql.Identifier(c.name)),
                                                           sql.Identifier(f"c{i}")) for i, c in enumerate(t.columns)))
    return rel, sql.Identifier("b")


def _key_text(kinds: list[str], values: list[str | None]) -> str:
    return "|".join(cn.field_text(k, v) for k, v in zip(kinds, values))


def _key_value(kind: str, text: str | None) -> Any:
    """A key value for messages, from its canonical text."""
    if text is None or kind not in ("int", "date", "timestamp"):
        return text
    if kind == "int":
        return int(text)
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    if kind == "date":
        return (epoch + timedelta(days=int(text))).date().isoformat()
    return (epoch + timedelta(microseconds=int(text))).isoformat()


def _source_rows(t: TargetTable, buckets: set[int]) -> dict[str, list[tuple[int, list[str | None]]]]:
    """Source rows of the given buckets: key text → [(rowid, canonical values)] (re-read from staging)."""
    hasher = BucketHasher(t.columns, t.pk, t.facts["buckets"])
    kinds = [c.kind for c in t.columns]
    pk_idx = [next(i for i, c in enumerate(t.columns) if c.name == p) for p in t.pk]
    wanted, out = np.array(sorted(buckets), np.int64), {}
    for batch in Staging(t.facts["staging"]).read_batches("clean", t.name, t.facts.get("partition")):
        _, ids = hasher.bucket_ids(batch, hasher.column_hashes(batch, hasher.canonical(batch)))
        batch = batch.filter(pa.array(np.isin(ids, wanted)))
        canon = {c.name: cn.arrow_canonical(c.kind, batch.column(c.name)) for c in t.columns}
        rowids = batch.column(cn.ROWID).to_pylist() if cn.ROWID in batch.schema.names else [None] * batch.num_rows
        for rowid, values in zip(rowids, zip(*(canon[c.name].to_pylist() for c in t.columns))):
            key = _key_text([kinds[i] for i in pk_idx], [values[i] for i in pk_idx]) if t.pk else _key_text(kinds, values)
            out.setdefault(key, []).append((rowid, list(values)))
    return out


def check_content_hash(t: TargetTable, agg: dict[str, Any]) -> CheckResult:
    rows = sum(n for n, _ in t.facts["bucket_hashes"])
    total = sum(s for _, s in t.facts["bucket_hashes"]) % rh.MODULUS
    if (agg["rows"], agg["hash_sum"]) == (rows, total):
        return CheckResult(t.name, r.CONTENT_HASH, True, f"row hashes of {rows} row(s) equal",
                           metadata={"buckets": t.facts["buckets"], "differing_buckets": 0})
    rel, bucket = _hash_relations(t)
    with t.conn.transaction():
        t.conn.execute("SET LOCAL TimeZone = 'UTC'")
        # The planner expects one group per key and would sort (spilling to disk); there are only `buckets` groups.
        t.conn.execute("SET LOCAL enable_sort = off")
        target = {b: (n, rh.hash_sum(s)) for b, n, s in t.rows(sql.SQL(
            "SELECT {b}, count(*), sum(h) FROM ({rel}) q GROUP BY 1").format(b=bucket, rel=rel))}
        bad = sorted(b for b, (n, s) in enumerate(t.facts["bucket_hashes"]) if target.get(b, (0, 0)) != (n, s))
        bad += sorted(b for b in target if b >= t.facts["buckets"])
        drill = set(bad[:MAX_DRILL_BUCKETS])
        target_rows = t.rows(sql.SQL("SELECT {cols} FROM ({rel}) q WHERE {b} = ANY(%s)").format(
            cols=sql.SQL(", ").join(sql.Identifier(f"c{i}") for i in range(len(t.columns))), rel=rel, b=bucket),
            (sorted(drill),))
    meta = {"buckets": t.facts["buckets"], "differing_buckets": len(bad)}
    if not bad:
        return CheckResult(t.name, r.CONTENT_HASH, False,
                           f"{r.CONTENT_HASH}: the table's total row hash differed but every bucket matched on a second "
                           f"scan: {t.schema}.{t.relname} changed during validation; validate again", metadata=meta)
    src = _source_rows(t, drill)
    tgt: dict[str, list[list[str | None]]] = {}
    pk_idx = [next(i for i, c in enumerate(t.columns) if c.name == p) for p in t.pk]
    for row in target_rows:
        values = list(row)
        key = (_key_text([t.kinds[p] for p in t.pk], [values[i] for i in pk_idx]) if t.pk
               else _key_text([c.kind for c in t.columns], values))
        tgt.setdefault(key, []).append(values)
    findings, keys = [], []
    for key in sorted(set(src) | set(tgt)):
        s_rows, t_rows = src.get(key, []), tgt.get(key, [])
        values = (s_rows[0][1] if s_rows else t_rows[0])
        shown = ({p: _key_value(t.kinds[p], values[i]) for p, i in zip(t.pk, pk_idx)} if t.pk
                 else {cn.ROWID: s_rows[0][0]} if s_rows else {"row": key[:80]})
        if t.pk and len(s_rows) == 1 and len(t_rows) == 1:
            cols = [c.name for c, a, b in zip(t.columns, s_rows[0][1], t_rows[0]) if a != b]
            if not cols:
                continue
            findings.append(f"{format_key(shown)} (column {', '.join(cols)})")
        elif len(s_rows) == len(t_rows):
            continue
        elif len(s_rows) > len(t_rows):
            findings.append(f"{format_key(shown)} (missing in target)")
        else:
            findings.append(f"{format_key(shown)} (not in source)" if not s_rows else
                            f"{format_key(shown)} ({len(t_rows)} copies in target)")
        keys.append(shown)
    more = f"; only {MAX_DRILL_BUCKETS} of {len(bad)} differing buckets inspected" if len(bad) > len(drill) else ""
    shown_text = "; ".join(findings[:5]) + (f"; … {len(findings) - 5} more" if len(findings) > 5 else "")
    return CheckResult(t.name, r.CONTENT_HASH, False,
                       f"{r.CONTENT_HASH}: {len(findings)} row(s) differ: {shown_text}{more}",
                       keys[:100], metadata={**meta, "rows_differing": len(findings)})


def postgres_checks(conn: psycopg.Connection, spec: Spec, table: str, facts: dict[str, Any], *,
                    url: str | None = None) -> list[CheckResult]:
    """Every check of one PostgreSQL table against its source facts (`url` for GX; derived from conn when None)."""
    from nova_pipeline.validate.expectations import check_expectations

    t = TargetTable(conn, spec, table, facts)
    start = time.perf_counter()
    agg = target_aggregates(t)
    agg_seconds = round(time.perf_counter() - start, 4)
    out = [
        _timed(check_row_reconciliation, t, agg),
        _timed(check_primary_key, t),
        _timed(check_not_null, t, agg),
        _timed(check_foreign_keys, t),
        _timed(check_check_constraints, t),
        _timed(check_column_aggregates, t, agg),
        _timed(check_content_hash, t, agg),
        _timed(check_expectations, conn, spec, table, t.schema, t.relname, url),
        _timed(check_quarantine_tolerance, spec, table, facts),
    ]
    for res in out:
        if res.check in (r.ROW_RECONCILIATION, r.NOT_NULL, r.COLUMN_AGGREGATES, r.CONTENT_HASH):
            res.metadata["aggregate_scan_seconds"] = agg_seconds
        res.metadata.setdefault("severity", res.severity)
    return out
