"""What the application needs beyond rows: views, triggers and full-text search, planned and created.

`plan_objects` reads the snapshot's schema and the spec and gives, per object,
the PostgreSQL statements that carry it over or the reason it is not carried
over (reported with its SQL). `create_objects` runs them once every table
holds its data, each object in its own transaction so one refusal does not stop
the others: full-text search first, then views in dependency order, then
triggers (after the load, so they never fire on migrated rows). `drop_triggers`
removes a previous run's triggers before tables are loaded again.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from nova_pipeline.extract import fts, introspect
from nova_pipeline.appschema import parity, triggers, views
from nova_pipeline.appschema.app_sql import Target, target_of
from nova_pipeline.core.identifiers import fit_identifier
from nova_pipeline.extract.snapshot import connect_readonly
from nova_pipeline.core.spec import Spec, parse_spec
from nova_pipeline.core.results import CheckResult


@dataclass
class AppObject:
    """One view, trigger or full-text search: how it is carried over, or why not."""

    kind: str  # view | trigger | fts | virtual table
    name: str
    sqlite_sql: str
    statements: list[str] = field(default_factory=list)
    reason: str | None = None
    relation: str | None = None  # a view's qualified PostgreSQL name
    lists: dict[int, str] = field(default_factory=dict)  # a view's group_concat columns (position → separator)

    @property
    def carried(self) -> bool:
        return self.reason is None and bool(self.statements)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def note(self) -> str:
        """One line for reports: what was not carried over, why, and its SQL."""
        return f"{self.kind} {self.name} not carried over: {self.reason}. SQLite SQL: {' '.join(self.sqlite_sql.split())}"


def _schema(spec: Spec) -> str:
    return fit_identifier(spec.targets.postgres.schema_ if spec.targets.postgres else "public")


@dataclass(frozen=True)
class SourceObjects:
    """The source's views, triggers and virtual tables (read from sqlite_master alone: no table is scanned)."""

    views: list[introspect.View]
    triggers: list[introspect.Trigger]
    virtual_tables: list[introspect.VirtualTable]
    fts: list[fts.FtsTable]

    def named(self) -> list[str]:
        """'view v', 'trigger t', 'fts f', 'virtual table x': every object, views first."""
        fts_names = {f.name for f in self.fts}
        return ([f"view {v.name}" for v in self.views] + [f"trigger {t.name}" for t in self.triggers]
                + [f"{'fts' if v.name in fts_names else 'virtual table'} {v.name}" for v in self.virtual_tables])


def read_objects(conn: sqlite3.Connection) -> SourceObjects:
    """Views, triggers, virtual and FTS tables of the database, in creation order."""
    views, trigs, virtual, fts_tables = [], [], [], []
    for kind, name, table, text in conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid"):
        if kind == "view":
            views.append(introspect.View(name, text))
        elif kind == "trigger":
            trigs.append(introspect.Trigger(name, table, text))
        elif kind == "table" and text and re.match(r"\s*CREATE\s+VIRTUAL\s+TABLE", text, re.I):
            found = fts.read_fts(conn, name, text)
            virtual.append(introspect.VirtualTable(name, found.module if found else _module(text)))
            if found:
                fts_tables.append(found)
    return SourceObjects(views, trigs, virtual, fts_tables)


def _module(create_sql: str) -> str:
    m = re.search(r"\bUSING\s+(\w+)", create_sql, re.I)
    return m.group(1).lower() if m else "unknown"


def plan_objects(spec: Spec, conn: sqlite3.Connection, target: Target | None = None) -> list[AppObject]:
    """Every view, trigger and FTS table of the SQLite database (`conn`), planned for the spec's target;
    `target` (default: the spec's tables) gets the views registered, for statements that read them."""
    source = read_objects(conn)
    target, schema, skip = target or target_of(spec), _schema(spec), set(spec.app_objects.skip)
    out = _full_text(spec, source, target, schema)
    if spec.app_objects.views:
        for v in views.plan_views(conn, [(v.name, v.sql) for v in source.views], target, schema, skip):
            out.append(AppObject("view", v.name, v.sqlite_sql, v.statements, v.reason,
                                 sql.Identifier(v.schema, v.target).as_string(None), v.lists))
    else:
        out += [AppObject("view", v.name, v.sql, reason="app_objects.views is false in the spec") for v in source.views]
    for t in source.triggers:
        if not spec.app_objects.triggers or t.name in skip:
            why = "skipped by the spec (app_objects.skip)" if t.name in skip else "app_objects.triggers is false in the spec"
            out.append(AppObject("trigger", t.name, t.sql, reason=why))
            continue
        p = triggers.plan_trigger(t.name, t.table, t.sql, target, schema)
        out.append(AppObject("trigger", t.name, t.sql, p.statements, p.reason))
    fts_names = {f.name for f in source.fts}
    out += [AppObject("virtual table", v.name, _sql_of(conn, v.name), reason=f"{v.module} virtual tables have no "
                      "PostgreSQL equivalent") for v in source.virtual_tables if v.name not in fts_names]
    return out


def _sql_of(conn: sqlite3.Connection, name: str) -> str:
    row = conn.execute("SELECT sql FROM sqlite_master WHERE name = ?", (name,)).fetchone()
    return row[0] if row else ""


def _full_text(spec: Spec, source: SourceObjects, target: Target, schema: str) -> list[AppObject]:
    out, done = [], set()
    by_name = {f.name.lower(): f for f in source.fts}
    for name, t in spec.table_items("postgres"):
        for f in t.fts:
            label = f.view or name
            done.add(label.lower())
            found = by_name.get(label.lower())
            stmts = [s.as_string(None) for s in fts.statements(spec, name, f)]
            out.append(AppObject("fts", label, _create_sql(found), stmts, None,
                                 sql.Identifier(schema, fit_identifier(f.view)).as_string(None) if f.view else None))
    for f in source.fts:
        if f.name.lower() in done:
            continue
        if f.content == "":
            reason = f.skip_reason()
        elif f.content:
            reason = f"its content table {f.content} has no `fts` entry with view {f.name} in the spec"
        else:
            reason = "its table is not migrated to PostgreSQL with an `fts` entry in the spec"
        out.append(AppObject("fts", f.name, _create_sql(f), reason=reason))
    return out


def _create_sql(f: fts.FtsTable | None) -> str:
    if f is None:
        return ""
    options = f", content={f.content!r}" if f.content is not None else ""
    return f"CREATE VIRTUAL TABLE {f.name} USING {f.module}({', '.join(f.columns)}{options})"


def create_objects(conn: psycopg.Connection, objects: list[AppObject]) -> list[AppObject]:
    """Run the statements of every carried-over object, each object in its own transaction; an object
    PostgreSQL refuses gets the refusal as its reason. Returns `objects`."""
    for obj in objects:
        if not obj.carried:
            continue
        try:
            with conn.transaction():
                for stmt in obj.statements:
                    conn.execute(stmt)
        except psycopg.Error as e:
            obj.reason = "PostgreSQL refused it: " + (str(e).strip().splitlines() or [type(e).__name__])[0]
    return objects


def drop_triggers(conn: psycopg.Connection) -> list[str]:
    """Drop the triggers a previous migration created, so loading again does not fire them."""
    dropped = []
    for stmt in triggers.drop_statements(conn):
        conn.execute(stmt)
        dropped.append(stmt.as_string(conn))
    return dropped


def check_views(sqlite_conn: sqlite3.Connection, pg_conn: psycopg.Connection,
                objects: list[AppObject]) -> tuple[bool, str, dict[str, str]]:
    """(all equal, summary, per view detail): each created view's rows against SQLite's view."""
    details, failed = {}, []
    for obj in objects:
        if obj.kind == "view" and obj.carried:
            if pg_conn.execute("SELECT to_regclass(%s)", (obj.relation,)).fetchone()[0] is None:
                continue  # not created: reported by the app_objects step
            equal, detail = parity.compare_view(sqlite_conn, pg_conn, obj.name, obj.relation, obj.lists)
            details[obj.name] = detail
            if not equal:
                failed.append(f"{obj.name}: {detail}")
    if failed:
        return False, f"{len(failed)} of {len(details)} views differ: " + "; ".join(failed), details
    return True, f"{len(details)} views return the same rows as in SQLite", details


APP_OBJECTS_TABLE = "postgres/app_objects"  # how reports name the checks below
VIEW_ROWS = "view_rows"


def parity_check_name(name: str) -> str:
    """The check name of a parity statement ([A-Za-z0-9_], distinct for distinct names)."""
    safe = "".join(c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in f"parity_{name}")
    return safe if safe == f"parity_{name}" else f"{safe}_{hashlib.sha1(name.encode()).hexdigest()[:6]}"


def run_checks(spec: Spec, snapshot: Path, pg_conn: psycopg.Connection) -> list[CheckResult]:
    """The view-rows check (unless `view_check: off`) and every parity statement, against the run's snapshot.

    `pg_conn` must be in autocommit mode (each statement runs in its own rolled-back transaction). A
    statement with `writes: true` runs on the snapshot in a transaction that is rolled back."""
    writes = any(p.writes for p in spec.parity)
    sqlite_conn = sqlite3.connect(snapshot, isolation_level=None) if writes else connect_readonly(snapshot)
    out = []
    with closing(sqlite_conn):
        target = target_of(spec)
        objects = plan_objects(spec, sqlite_conn, target)  # registers the views parity statements may read
        if spec.app_objects.view_check != "off":
            passed, detail, per_view = check_views(sqlite_conn, pg_conn, objects)
            out.append(CheckResult(APP_OBJECTS_TABLE, VIEW_ROWS, passed, detail,
                                   severity="ERROR" if spec.app_objects.view_check == "blocking" else "WARN",
                                   metadata={"views": per_view}))
        elsewhere = {n.lower(): t.target for n, t in spec.tables.items() if t.target != "postgres"}
        for stmt in spec.parity:
            moved = sorted(parity.tables_read(stmt.sqlite_sql or stmt.sql) & elsewhere.keys())
            if moved and not stmt.sqlite_sql:
                out.append(CheckResult(APP_OBJECTS_TABLE, parity_check_name(stmt.name), False,
                                       f"not run: it reads {', '.join(f'{n} (target {elsewhere[n]})' for n in moved)}, "
                                       "not in PostgreSQL; remove it from `parity` or give both `sql` and `sqlite_sql`",
                                       severity="WARN"))
                continue
            r = parity.run_statement(sqlite_conn, pg_conn, stmt, target)
            out.append(CheckResult(APP_OBJECTS_TABLE, parity_check_name(stmt.name), r.passed, r.detail,
                                   severity="ERROR" if stmt.blocking else "WARN",
                                   metadata={"postgres_sql": r.sql, "sqlite_sql": r.sqlite_sql, "ms": r.ms}))
    return out


def not_carried(objects: list[AppObject]) -> list[str]:
    """Report lines for every object that was not carried over."""
    return [o.note() for o in objects if not o.carried]


def summary_lines(objects: list[dict[str, Any]]) -> list[str]:
    """Plan lines from AppObject.to_dict()s: each object's PostgreSQL SQL, or why it is not carried over."""
    lines = []
    for o in objects:
        if o["reason"] is None:
            lines.append(f"{o['kind']} {o['name']}:")
            lines += [f"    {line}" for stmt in o["statements"] for line in (stmt + ";").splitlines()]
        else:
            lines.append(f"{o['kind']} {o['name']} NOT carried over: {o['reason']}")
            lines.append(f"    SQLite: {' '.join(o['sqlite_sql'].split())}")
    return lines


def search_examples(spec: Spec) -> list[str]:
    """The query replacing MATCH for each full-text search of the spec."""
    return [fts.search_example(spec, name, f) for name, t in spec.table_items("postgres") for f in t.fts]


def propose(spec: dict, source: introspect.SourceSchema, sqlite_path: Path, report: introspect.TypeReport) -> None:
    """For init: `fts` entries and parity statements into the proposed spec mapping, and what becomes of each
    view, trigger and FTS table into the type report (its warnings name what is not carried over)."""
    tables = {n.lower(): n for n in spec["tables"]}
    for f in source.fts:
        table, entry = fts.proposed(f)
        if (name := tables.get(table.lower())) is None:
            continue
        columns = {c.lower(): c for c in spec["tables"][name].get("columns", {})}
        entry = {**entry, "columns": [columns.get(c.lower(), c) for c in entry["columns"]]}
        if "view" not in entry and "search" in columns:  # the tsvector column needs a name of its own
            entry["column"] = next(n for i in range(1, 100) if (n := f"search_{i}") not in columns)
        if "key" in entry:
            entry["key"] = columns.get(entry["key"].lower(), entry["key"])
        spec["tables"][name].setdefault("fts", []).append(entry)
    spec["parity"] = parity.proposed_statements([
        {"name": t.table, "primary_key": t.primary_key, "rows": t.rows,
         "columns": [{"name": c.column, "pg_type": c.pg_type, "cast": c.rows_needing_cast,
                      "quarantine": c.rows_to_quarantine} for c in t.columns]} for t in report.tables])
    with closing(connect_readonly(sqlite_path)) as conn:
        objects = plan_objects(parse_spec(spec), conn)
    report.app_objects = [o.to_dict() for o in objects]
    report.warnings += [o.note() for o in objects if not o.carried]
