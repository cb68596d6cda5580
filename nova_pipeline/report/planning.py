"""Dry run: what a migration of the spec would do, computed without writing anything."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any

from nova_pipeline.appschema import app_objects
from nova_pipeline.core import identifiers
from nova_pipeline.extract import introspect, snapshot
from nova_pipeline.load import partitions, postgres_ddl
from nova_pipeline.extract.export import quote
from nova_pipeline.extract.snapshot import check_source
from nova_pipeline.core.spec import Spec, TableSpec


def plan(spec: Spec) -> dict[str, Any]:
    """Tables with targets, row counts and column casts; the DDL; partitioned tables; embeds."""
    source = spec.resolve(spec.source.sqlite)
    if not source.exists():
        raise FileNotFoundError(f"{source}: SQLite source not found (spec source.sqlite)")
    check_source(source, [name for name, _ in spec.table_items()])
    tables = {}
    with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as conn:
        for name, t in spec.table_items():
            rows = conn.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()[0]
            target = (".".join(identifiers.pg_table(spec, name)) if t.target == "postgres"
                      else f"{spec.targets.mongo.database}.{identifiers.mongo_collection(spec, name)}")
            entry: dict[str, Any] = {"target": t.target, "target_name": target, "source_rows": rows,
                                     "columns": {src: {"declared": c.declared, "type": c.type, "target_column": dst}
                                                 for (src, dst), c in zip(identifiers.target_columns(t), t.columns.values())}}
            if t.partition:
                first, last = partitions.partition_range(spec, name, source)
                entry["partition"] = {"column": t.partition.column, "grain": t.partition.grain,
                                      "physical": t.partition.physical, "start": t.partition.start or "first reading",
                                      "range": [first.isoformat(), last.isoformat()]}
            if t.embed:
                entry["embed"] = [e.model_dump(by_alias=True, exclude_defaults=True) for e in t.embed]
            if t.ttl:
                entry["ttl"] = t.ttl.model_dump()
            if t.target == "postgres":
                entry.update(_app_schema(t))
            tables[name] = entry
    for (name, column), value in postgres_ddl.next_keys(spec, source).items():
        tables[name]["identity"] = {"column": column, "restart": value}
    skipped = [n for n, t in spec.tables.items() if t.target == "skip"]
    with closing(snapshot.connect_readonly(source)) as conn:
        objects = app_objects.plan_objects(spec, conn)
        for name, lines in _not_carried(spec, conn).items():
            tables[name]["not_carried"] = lines
    return {"source": str(source), "tables": tables, "skipped": skipped,
            "app_objects": [o.to_dict() for o in objects], "full_text_search": app_objects.search_examples(spec),
            "ddl": postgres_ddl.plan_ddl(spec) if spec.table_items("postgres") else [],
            "partitioned": {n: e["partition"] for n, e in tables.items() if "partition" in e}}


def _app_schema(t: TableSpec) -> dict[str, Any]:
    """What keeps the application running on the table: generated columns, NOCASE columns, CHECKs not translated."""
    out: dict[str, Any] = {}
    if generated := {c: col.generated for c, col in t.columns.items() if col.generated}:
        out["generated"] = generated
    if nocase := [c for c, col in t.columns.items() if col.collate == "nocase"]:
        out["nocase"] = nocase
    if untranslated := [{"sqlite": c.sqlite, "reason": c.reason} for c in t.checks if c.sql is None]:
        out["checks_not_translated"] = untranslated
    return out


def _not_carried(spec: Spec, conn: sqlite3.Connection) -> dict[str, list[str]]:
    """Per PostgreSQL table: the source's generated columns and CREATE INDEXes the spec does not carry over."""
    out = {}
    for table in introspect.read_schema(conn).tables:
        t = spec.tables.get(table.name)
        if t is None or t.target != "postgres":
            continue
        indexes = {i.name for i in t.indexes if i.name}
        lines = [f"generated column {c.name} ({c.generated} in SQLite): its computed values, as a plain column"
                 for c in table.columns if c.generated and c.name in t.columns and not t.columns[c.name].generated]
        lines += [f"index {i.name}: {' '.join((i.sql or '').split())}" for i in table.indexes
                  if i.origin == "c" and identifiers.fit_identifier(i.name) not in indexes]
        if lines:
            out[table.name] = lines
    return out


def to_text(p: dict[str, Any]) -> str:
    """Human-readable plan."""
    lines = [f"Plan for {p['source']} (dry run: nothing written)", ""]
    for name, t in p["tables"].items():
        lines.append(f"{name} → {t['target']} {t['target_name']}: {t['source_rows']:,} rows")
        for col, c in t["columns"].items():
            rename = f" as {c['target_column']}" if c["target_column"] != col else ""
            lines.append(f"    {col}{rename}: {c['declared'] or '(none)'} → {c['type']}")
        if "identity" in t:
            lines.append(f"    identity {t['identity']['column']}: restarted at {t['identity']['restart']} after the load")
        for col, expression in t.get("generated", {}).items():
            lines.append(f"    generated {col}: GENERATED ALWAYS AS ({expression}) STORED (not copied)")
        if t.get("nocase"):
            lines.append(f"    COLLATE NOCASE: {', '.join(t['nocase'])}")
        for c in t.get("checks_not_translated", []):
            lines.append(f"    CHECK not translated: {c['sqlite']} ({c['reason']})")
        for line in t.get("not_carried", []):
            lines.append(f"    not carried over: {line}")
    if p["partitioned"]:
        lines += ["", "Partitioned tables:"]
        lines += [f"    {n}: {v['column']} by {v['grain']} (physical {v['physical']}), from {v['start']}: "
                  f"{v['range'][0]} … {v['range'][1]}"
                  for n, v in p["partitioned"].items()]
    if p["skipped"]:
        lines += ["", "Skipped: " + ", ".join(p["skipped"])]
    if p["app_objects"]:
        lines += ["", "Views, triggers, full-text search (created after the load):"]
        lines += [f"    {line}" for line in app_objects.summary_lines(p["app_objects"])]
    if p["full_text_search"]:
        lines += ["", "Instead of MATCH:"] + [f"    {q}" for q in p["full_text_search"]]
    if p["ddl"]:
        lines += ["", "DDL:"] + [f"    {s}" for s in p["ddl"]]
    return "\n".join(lines)
