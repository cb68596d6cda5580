"""What nova-pipeline last wrote into each PostgreSQL target table, and whether the table still holds it.

Every load records, in its own transaction just before it commits, the
table's columns (names and types) and its row versions: how many rows carry
each `xmin` (the id of the transaction that wrote the row). Any INSERT or
UPDATE since adds rows of another transaction, a DELETE lowers a count, and
ALTER TABLE changes the columns; VACUUM (FREEZE, FULL) and CLUSTER keep
`xmin`. Comparing needs one pass over the table that reads no column
values, far cheaper than hashing the content (docs/performance.md).
`migrate` refuses to replace a non-empty table that differs from its record
(or has none) unless `--force` is given.
"""

from __future__ import annotations

import json

import psycopg
from psycopg import sql

from nova_pipeline.core.identifiers import mongo_collection, pg_table
from nova_pipeline.core.run_lock import META_SCHEMA
from nova_pipeline.core.spec import Spec

RECORDS = sql.Identifier(META_SCHEMA, "nova_migrated")
_DDL = (
    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(META_SCHEMA)),
    sql.SQL("CREATE TABLE IF NOT EXISTS {} (target text PRIMARY KEY, columns text NOT NULL, row_versions jsonb NOT NULL,"
            " migration text, loaded_at timestamptz NOT NULL DEFAULT now())").format(RECORDS),
)


class TargetChanged(RuntimeError):
    """Target tables hold content nova-pipeline did not leave there; replacing them needs --force."""


class TargetTablesMissing(ValueError):
    """Tables the spec sends to PostgreSQL are not in the target: nothing to validate yet."""


def tables_holding_rows(conn: psycopg.Connection, spec: Spec) -> list[str]:
    """The spec's PostgreSQL tables (source names) whose target table exists and holds at least one row."""
    out = []
    for name, _ in spec.table_items("postgres"):
        table = sql.Identifier(*pg_table(spec, name))
        if (conn.execute("SELECT to_regclass(%s)", (table.as_string(conn),)).fetchone()[0] is not None
                and conn.execute(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(table)).fetchone()[0]):
            out.append(name)
    return out


def collections_holding_rows(db, spec: Spec) -> list[str]:
    """The spec's MongoDB tables (source names) whose collection in `db` holds at least one document."""
    return [name for name, _ in spec.table_items("mongo")
            if db[mongo_collection(spec, name)].find_one({}, {"_id": 1}) is not None]


def missing_tables(conn: psycopg.Connection, spec: Spec) -> list[str]:
    """The qualified names of the spec's PostgreSQL tables that the target does not hold."""
    names = [sql.Identifier(*pg_table(spec, t)).as_string(conn) for t, _ in spec.table_items("postgres")]
    return [n for n in names if conn.execute("SELECT to_regclass(%s)", (n,)).fetchone()[0] is None]


def _columns(conn: psycopg.Connection, regclass: str) -> str:
    return conn.execute(
        "SELECT string_agg(quote_ident(attname) || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum)"
        " FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped", (regclass,)).fetchone()[0]


def _row_versions(conn: psycopg.Connection, table: sql.Identifier) -> dict[str, int]:
    return dict(conn.execute(sql.SQL("SELECT xmin::text, count(*) FROM {} GROUP BY 1").format(table)).fetchall())


def ensure_records(conn: psycopg.Connection) -> None:
    """Create nova_meta.nova_migrated when missing."""
    if conn.execute("SELECT to_regclass(%s)", (RECORDS.as_string(conn),)).fetchone()[0] is None:
        for stmt in _DDL:
            conn.execute(stmt)


def record_load(conn: psycopg.Connection, table: sql.Identifier, replaced_rows: int | None = None,
                migration: str | None = None) -> None:
    """Inside the load's transaction, after its data: remember what the table now holds, and which migration
    wrote it. `replaced_rows`: the load emptied the table and wrote that many rows, all of this transaction
    (no scan needed)."""
    ensure_records(conn)
    regclass = table.as_string(conn)
    if replaced_rows is None:
        versions = _row_versions(conn, table)
    else:
        one = conn.execute(sql.SQL("SELECT xmin::text FROM {} LIMIT 1").format(table)).fetchone()
        versions = {one[0]: replaced_rows} if one else {}
    conn.execute(sql.SQL("INSERT INTO {} (target, columns, row_versions, migration) VALUES (%s, %s, %s, %s)"
                         " ON CONFLICT (target) DO UPDATE SET columns = excluded.columns, row_versions ="
                         " excluded.row_versions, migration = excluded.migration, loaded_at = now()").format(RECORDS),
                 (regclass, _columns(conn, regclass), json.dumps(versions), migration))


def changed_tables(conn: psycopg.Connection, spec: Spec) -> str:
    """The spec's non-empty PostgreSQL tables whose content is not what nova-pipeline last wrote there, each with
    how (empty when none; missing, empty and unchanged tables are fine)."""
    have_records = conn.execute("SELECT to_regclass(%s)", (RECORDS.as_string(conn),)).fetchone()[0] is not None
    changed = []
    for name, _ in spec.table_items("postgres"):
        schema, relname = pg_table(spec, name)
        table, shown = sql.Identifier(schema, relname), f"{schema}.{relname}"
        regclass = table.as_string(conn)
        if conn.execute("SELECT to_regclass(%s)", (regclass,)).fetchone()[0] is None:
            continue
        if not conn.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(table)).fetchone()[0]:
            continue
        rec = conn.execute(sql.SQL("SELECT columns, row_versions FROM {} WHERE target = %s").format(RECORDS),
                           (regclass,)).fetchone() if have_records else None
        if rec is None:
            changed.append(f"{shown} (holds rows nova-pipeline did not write)")
        elif rec[0] != _columns(conn, regclass):
            changed.append(f"{shown} (its columns changed)")
        elif rec[1] != _row_versions(conn, table):
            changed.append(f"{shown} (rows were inserted, updated or deleted)")
    return "; ".join(changed)


def loaded_by_others(conn: psycopg.Connection, spec: Spec, tables: list[str], migration: str) -> str:
    """Of the spec's PostgreSQL `tables` that `migration` loaded, those another migration has loaded since (empty
    when none)."""
    if conn.execute("SELECT to_regclass(%s)", (RECORDS.as_string(conn),)).fetchone()[0] is None:
        return ""
    others = []
    for name in tables:
        schema, relname = pg_table(spec, name)
        row = conn.execute(sql.SQL("SELECT migration FROM {} WHERE target = %s").format(RECORDS),
                           (sql.Identifier(schema, relname).as_string(conn),)).fetchone()
        if row is not None and row[0] not in (None, migration):
            others.append(f"{schema}.{relname} (by migration {row[0]})")
    return "; ".join(others)
