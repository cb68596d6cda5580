"""Checks of one MongoDB collection (or a table embedded into one) against its source facts, server-side.

Counts and aggregates run as `count_documents` / aggregation pipelines on the
server. Documents follow mongo_documents: fields are target column names, the
primary key lives in `_id`, timestamps are BSON dates (milliseconds), numeric
is Decimal128. A row-level content hash is not computed: MongoDB's
aggregation language has no hash operator, and hashing client-side would pull
the whole collection; counts and per-field aggregates stand in for it.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timezone
from typing import Any

from nova_pipeline.core.identifiers import mongo_collection
from nova_pipeline.core.spec import Spec
from nova_pipeline.core import results as r
from nova_pipeline.core.results import CheckResult
from nova_pipeline.validate.source_facts import aggregate_value, source_rows
from nova_pipeline.validate.tolerance import check_quarantine_tolerance

SAMPLE = 10
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def _epoch_ms(v: datetime) -> int:
    v = v if v.tzinfo else v.replace(tzinfo=timezone.utc)
    return (v - _EPOCH) // (datetime(1970, 1, 1, 0, 0, 0, 1000, timezone.utc) - _EPOCH)


class _Place:
    """Where a table's rows live: the collection, the unwind stages reaching them and their field prefix."""

    def __init__(self, spec: Spec, table: str, facts: dict[str, Any]):
        emb = facts.get("embedding")
        self.embedded = emb
        self.collection = mongo_collection(spec, emb["root"] if emb else table)
        path = emb["path"] if emb else []
        self.unwind = [{"$unwind": "$" + ".".join(path[: i + 1])} for i in range(len(path))]
        self.prefix = ".".join(path) + "." if path else ""
        pk = facts["primary_key"]
        self.fields = {c: (f"_id.{c}" if len(pk) > 1 else "_id") if (c in pk and not emb) else c for c in facts["columns"]}
        # `too_large: split` along the path: rows of split parents live in `<collection>_<as>` (one document each)
        self.splits: list[tuple[str, list[str]]] = []
        owner = emb["root"] if emb else table
        embeds = spec.tables[owner].embed
        for i, step in enumerate(path):
            e = next(x for x in embeds if x.as_ == step)
            if e.too_large == "split":
                self.splits.append((f"{mongo_collection(spec, owner)}_{e.as_}", path[i + 1:]))
            owner, embeds = e.table, e.embed

    def path(self, column: str) -> str:
        return "$" + self.prefix + self.fields[column]


def check_document_count(db, table: str, place: _Place, facts: dict[str, Any]) -> CheckResult:
    coll = db[place.collection]
    emb = place.embedded
    if emb is None:
        expected = source_rows(facts) - facts["quarantined_rows"]
        found = coll.count_documents({})
        what = f"{place.collection}: {found} document(s), source {source_rows(facts)} − quarantined {facts['quarantined_rows']}"
    else:
        found, expected = _embedded_count(coll, emb["path"], emb["mode"]), emb["expected"]
        split = {c: _embedded_count(db[c], rest, emb["mode"]) for c, rest in place.splits}
        found += sum(split.values())
        what = (f"{place.collection}.{'.'.join(emb['path'])}: {found} embedded"
                + "".join(f" ({n} in {c})" for c, n in split.items() if n)
                + f", expected {expected} (clean rows {facts['clean_rows']}, orphans {emb['orphans']})")
    meta = {"documents": found, "expected": expected}
    if found == expected:
        return CheckResult(table, r.DOCUMENT_COUNT, True, what, metadata=meta)
    return CheckResult(table, r.DOCUMENT_COUNT, False,
                       f"{r.DOCUMENT_COUNT}: {what}: {abs(found - expected)} {'missing' if found < expected else 'too many'}",
                       metadata=meta)


def _embedded_count(coll, path: list[str], mode: str) -> int:
    """Rows embedded at `path` in a collection's documents (each document is one row when the path is empty)."""
    if not path:
        return coll.count_documents({})
    parents = [{"$unwind": "$" + ".".join(path[: i + 1])} for i in range(len(path) - 1)]
    last = "$" + ".".join(path)
    per_doc = ({"$size": {"$ifNull": [last, []]}} if mode == "array"
               else {"$cond": [{"$eq": [{"$type": last}, "object"]}, 1, 0]})
    rows = list(coll.aggregate([*parents, {"$group": {"_id": None, "n": {"$sum": per_doc}}}]))
    return rows[0]["n"] if rows else 0


def _target_value(kind: str, v: Any) -> Any:
    """A value from MongoDB in the form of the source facts (dates at millisecond precision)."""
    if v is None:
        return None
    if hasattr(v, "to_decimal"):
        v = v.to_decimal()
    if isinstance(v, datetime):
        return _epoch_ms(v) // 86_400_000 if kind == "date" else _epoch_ms(v)
    try:
        return aggregate_value(kind, v)
    except (TypeError, ValueError, AttributeError):  # a field of the wrong BSON type: a difference, not a crash
        return f"{type(v).__name__} {v!r}"


def _source_value(kind: str, v: Any) -> Any:
    if v is None or kind not in ("timestamp", "date"):
        return v
    return v // 1000 if kind == "timestamp" else v


_COMPARED = {"int": ("min", "max", "sum"), "float8": ("min", "max", "sum"), "float4": ("min", "max", "sum"),
             "numeric": ("min", "max"), "text": ("min", "max"), "char": ("min", "max"), "uuid": ("min", "max"),
             "bool": ("sum",), "timestamp": ("min", "max"), "date": ("min", "max")}


def _aggregate(db, place: _Place, facts: dict[str, Any], compared: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    group: dict[str, Any] = {"_id": None}
    for i, (name, c) in enumerate(facts["columns"].items()):
        p = place.path(name)
        group[f"n{i}"] = {"$sum": {"$cond": [{"$eq": [{"$ifNull": [p, None]}, None]}, 0, 1]}}
        stats = compared.get(c["kind"], ())
        if "min" in stats:
            group[f"lo{i}"], group[f"hi{i}"] = {"$min": p}, {"$max": p}
        if "sum" in stats:
            group[f"s{i}"] = {"$sum": {"$cond": [p, 1, 0]}} if c["kind"] == "bool" else {"$sum": p}
    rows = list(db[place.collection].aggregate([*place.unwind, {"$group": group}]))
    return rows[0] if rows else {}


def check_column_aggregates(db, table: str, place: _Place, facts: dict[str, Any]) -> CheckResult:
    compared, note = _COMPARED, ""
    try:
        got = _aggregate(db, place, facts, compared)
    except TypeError:  # mongomock cannot order Decimal128; a real server can
        compared = {k: v for k, v in _COMPARED.items() if k != "numeric"}
        got, note = _aggregate(db, place, facts, compared), " (numeric min/max not verified: mongomock cannot order Decimal128)"
    if place.embedded and place.embedded["limited"]:
        return CheckResult(table, r.COLUMN_AGGREGATES, True, f"not compared: embed limit keeps a subset of "
                           f"{table} in {place.collection} (document_count covers it)", severity="WARN")
    split = [c for c, _ in place.splits if db[c].find_one({}, {"_id": 1}) is not None]
    if split:
        return CheckResult(table, r.COLUMN_AGGREGATES, True, f"not compared: rows of {table} were split out of "
                           f"{place.collection} into {', '.join(split)} (document_count covers them)", severity="WARN")
    diffs: dict[str, dict[str, Any]] = {}
    for i, (name, c) in enumerate(facts["columns"].items()):
        kind, stats = c["kind"], compared.get(c["kind"], ())
        pairs = {"count": (c["count"], got.get(f"n{i}", 0))}
        if "min" in stats and "NaN" not in (c.get("min"), c.get("max")):  # MongoDB orders NaN below every number
            pairs["min"] = (_source_value(kind, c.get("min")), _target_value(kind, got.get(f"lo{i}")))
            pairs["max"] = (_source_value(kind, c.get("max")), _target_value(kind, got.get(f"hi{i}")))
        if "sum" in stats:
            pairs["sum"] = (c.get("sum"), _target_value(kind, got.get(f"s{i}", 0)))
        for stat, (a, b) in pairs.items():
            close = (stat == "sum" and isinstance(a, float) and isinstance(b, float)
                     and math.isclose(a, b, rel_tol=0, abs_tol=1e-9 * max(c.get("sum_abs", 0.0), 1e-300)))
            if a != b and not close:
                diffs.setdefault(name, {})[stat] = {"source": a, "target": b}
    if not diffs:
        return CheckResult(table, r.COLUMN_AGGREGATES, True,
                           f"count, min, max, sum equal in {len(facts['columns'])} field(s) of {place.collection}{note}")
    text = "; ".join(f"{col}: " + ", ".join(f"{s} {v['source']!r} → {v['target']!r}" for s, v in d.items())
                     for col, d in diffs.items())
    return CheckResult(table, r.COLUMN_AGGREGATES, False, f"{r.COLUMN_AGGREGATES}: {place.collection}: {text}{note}",
                       metadata={"differences": diffs})


def check_validator(db, table: str, place: _Place) -> CheckResult:
    """Documents violating the collection's own validator, via {$nor: [validator]}; never assumed to pass."""
    if place.embedded:
        return CheckResult(table, r.VALIDATOR_COMPLIANCE, True,
                           f"embedded in {place.collection}: checked with that collection's validator", severity="WARN")
    coll = db[place.collection]
    try:
        info = next(iter(db.list_collections(filter={"name": place.collection})), None)
        validator = ((info or {}).get("options") or {}).get("validator")
        if not validator:
            return CheckResult(table, r.VALIDATOR_COMPLIANCE, True, f"{place.collection} has no validator", severity="WARN")
        bad = coll.count_documents({"$nor": [validator]})
        ids = [d["_id"] for d in coll.find({"$nor": [validator]}, {"_id": 1}).limit(SAMPLE)] if bad else []
    except NotImplementedError as e:
        return CheckResult(table, r.VALIDATOR_COMPLIANCE, False,
                           f"{r.VALIDATOR_COMPLIANCE}: not verified: this server (mongomock) cannot run it ({e})",
                           severity="WARN", metadata={"skipped": True})
    if not bad:
        return CheckResult(table, r.VALIDATOR_COMPLIANCE, True, f"every document of {place.collection} matches its validator",
                           severity="WARN")
    keys = [{"_id": i} for i in ids]
    return CheckResult(table, r.VALIDATOR_COMPLIANCE, False,
                       f"{r.VALIDATOR_COMPLIANCE}: {bad} document(s) of {place.collection} violate its validator: "
                       + ", ".join(f"_id={i!r}" for i in ids[:5]), keys, severity="WARN")


def mongo_checks(db, spec: Spec, table: str, facts: dict[str, Any]) -> list[CheckResult]:
    """Every check of one MongoDB-bound table (a collection, or rows embedded into a parent's documents)."""
    place = _Place(spec, table, facts)
    out = []
    for fn, args in ((check_document_count, (db, table, place, facts)), (check_column_aggregates, (db, table, place, facts)),
                     (check_validator, (db, table, place)), (check_quarantine_tolerance, (spec, table, facts))):
        start = time.perf_counter()
        res = fn(*args)
        res.metadata["seconds"] = round(time.perf_counter() - start, 4)
        out.append(res)
    return out
