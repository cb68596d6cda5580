"""SQLite views → PostgreSQL views: the SELECT translated (app_sql), in dependency order.

A view keeps its source name and SQLite's column names (PostgreSQL would name
an unaliased `a || b` `?column?`), given as the view's column list; it reads
the target relations its SQLite text names. A view is not carried over when
its SQL does not translate, when it reads a relation that is not migrated to
PostgreSQL, or when a view it reads is not carried over; each such view is
reported with the reason and its SQL.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from psycopg import sql
from sqlglot import exp
from sqlglot.errors import SqlglotError

from nova_pipeline.appschema.app_sql import Target, translate_tree
from nova_pipeline.core.identifiers import fit_identifier
from nova_pipeline.core.sql_translate import Untranslatable, parse, render


@dataclass
class ViewPlan:
    """One source view: its PostgreSQL statements, or why it is not carried over."""

    name: str
    sqlite_sql: str
    schema: str
    target: str
    statements: list[str] = field(default_factory=list)
    reason: str | None = None
    reads: list[str] = field(default_factory=list)  # lower-case names of the views it reads
    columns: list[str] = field(default_factory=list)  # SQLite's column names of the view
    lists: dict[int, str] = field(default_factory=dict)  # column position → separator of a group_concat column


def _select_of(create_sql: str) -> exp.Expression:
    tree = parse(create_sql)
    if not isinstance(tree, exp.Create) or not isinstance(tree.expression, exp.Query):
        raise Untranslatable("not a CREATE VIEW ... AS SELECT")
    return tree.expression


def _read_relations(select: exp.Expression) -> set[str]:
    ctes = {c.alias_or_name.lower() for c in select.find_all(exp.CTE)}
    return {t.name.lower() for t in select.find_all(exp.Table) if t.name.lower() not in ctes}


def plan_views(conn: sqlite3.Connection, views: list[tuple[str, str]], target: Target, schema: str,
               skip: set[str]) -> list[ViewPlan]:
    """Plans of `views` ((name, CREATE VIEW text) in source order), in an order that creates each after the
    views it reads; views registered in `target` so later views (and triggers) resolve them."""
    plans: dict[str, ViewPlan] = {}
    selects: dict[str, exp.Expression] = {}
    for name, create_sql in views:
        plan = ViewPlan(name, create_sql, schema, fit_identifier(name))
        plans[name.lower()] = plan
        if name in skip:
            plan.reason = "skipped by the spec (app_objects.skip)"
            continue
        try:
            selects[name.lower()] = _select_of(create_sql)
        except Untranslatable as e:
            plan.reason = str(e)
    for plan in plans.values():
        if plan.reason is None:
            try:
                plan.columns = [r[0] for r in conn.execute("SELECT name FROM pragma_table_info(?)", (plan.name,))]
            except sqlite3.Error as e:  # e.g. it reads a table dropped since
                plan.reason = f"SQLite cannot read it either: {e}"
                continue
            target.add_relation(plan.name, schema, plan.target)
    ordered = _in_dependency_order(plans, selects)
    for plan in ordered:
        if plan.reason is not None:
            continue
        select = selects[plan.name.lower()]
        reads = _read_relations(select)
        plan.reads = sorted(r for r in reads if r in plans)
        missing = sorted(r for r in reads if r not in target.relations and r not in plans)
        blocked = [plans[r].name for r in plan.reads if plans[r].reason is not None]
        if blocked:
            plan.reason = f"reads view {blocked[0]}, which is not carried over"
        elif missing:
            plan.reason = f"reads {', '.join(missing)}, not migrated to PostgreSQL"
        else:
            plan.lists = list_columns(select)
            try:
                body = render(translate_tree(select, target))
            except (Untranslatable, SqlglotError) as e:
                plan.reason = str(e)
                continue
            ident = sql.Identifier(schema, plan.target).as_string(None)
            cols = ", ".join(sql.Identifier(c).as_string(None) for c in plan.columns)
            plan.statements = [f"DROP VIEW IF EXISTS {ident} CASCADE", f"CREATE VIEW {ident} ({cols}) AS {body}"]
    return ordered


def list_columns(select: exp.Expression) -> dict[int, str]:
    """Positions of group_concat columns (and their separators): SQLite leaves the order of their parts
    unspecified, so comparisons take the parts in any order."""
    if not isinstance(select, exp.Select):
        return {}
    out = {}
    for i, projection in enumerate(select.expressions):
        if isinstance(projection, exp.Star) or isinstance(projection, exp.Column) and projection.is_star:
            break
        node = projection.unalias()
        if isinstance(node, exp.GroupConcat):
            sep = node.args.get("separator")
            if sep is None or isinstance(sep, exp.Literal) and sep.is_string:
                out[i] = sep.this if sep is not None else ","
    return out


def _in_dependency_order(plans: dict[str, ViewPlan], selects: dict[str, exp.Expression]) -> list[ViewPlan]:
    deps = {n: {r for r in _read_relations(s) if r in plans and r != n} for n, s in selects.items()}
    out: list[str] = []
    while len(out) < len(plans):
        ready = [n for n in plans if n not in out and deps.get(n, set()) <= set(out)]
        out.append(ready[0] if ready else next(n for n in plans if n not in out))
    return [plans[n] for n in out]

