"""Application parity: one statement run on the SQLite snapshot and on PostgreSQL, outcomes compared.

Each side's outcome is an error or rows (plus the row count a write reports).
Rows compare as multisets unless the statement orders them (top-level ORDER BY);
values are normalised first, so the same value in both type systems compares
equal: booleans as 0/1, integers, floats and decimals as numbers (12
significant digits), timestamps as UTC text `YYYY-MM-DD HH:MM:SS[.ffffff]`
(ISO text from SQLite parsed the same way), dates and times as ISO text,
JSON (jsonb values, JSON text) in canonical form, bytes as hex. Rows stream
through a count and an order-insensitive sum of row hashes, so memory stays
bounded; the first rows of each side are kept to name differences.

`init` proposes statements (rows per table, newest rows by primary key) so
every migration ships with some.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime, time as dtime, timezone
from decimal import Decimal
from typing import Any

import psycopg
from sqlglot import exp

from nova_pipeline.appschema.app_sql import Target, translate_query
from nova_pipeline.extract.snapshot import quote
from nova_pipeline.core.spec import ParityStatement
from nova_pipeline.core.sql_translate import Untranslatable, parse
from nova_pipeline.appschema.views import list_columns

KEPT_ROWS = 20_000  # rows of each side kept to name differences
_ISO = re.compile(r"^\d{4}-\d\d-\d\d([ T]\d\d:\d\d(:\d\d(\.\d+)?)?)?(Z|[+-]\d\d(:?\d\d)?)?$")
_MASK = (1 << 64) - 1


@dataclass
class Outcome:
    """What one side did: an error, or its rows summarised."""

    error: str | None = None
    rows: int = 0
    rowcount: int = -1
    hash: int = 0
    kept: list[tuple] | None = None
    complete: bool = True  # kept holds every row


@dataclass(frozen=True)
class ParityResult:
    """The comparison of one statement on both sides."""

    name: str
    passed: bool
    detail: str
    sql: str
    sqlite_sql: str
    blocking: bool = True
    ms: float = 0.0


def normalise(value: Any) -> Any:
    """A value in a form both databases' drivers agree on (see the module doc)."""
    if value is None or isinstance(value, str) and not value:
        return value
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, (float, Decimal)):
        f = float(value)
        if f != f or f in (float("inf"), float("-inf")):
            return str(f)
        f = float(f"{f:.12g}")
        return int(f) if f.is_integer() and abs(f) < 2**63 else f
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return value.isoformat(sep=" ", timespec="microseconds" if value.microsecond else "seconds")
    if isinstance(value, (date, dtime)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, str):
        if _ISO.match(value) and len(value) > 10:  # a date alone stays as it is, as PostgreSQL's dates print
            try:
                return normalise(datetime.fromisoformat(value.replace("Z", "+00:00")))
            except ValueError:
                return value
        if value[0] in "[{":
            try:
                return normalise(json.loads(value))
            except ValueError:
                return value
    return value


def _summarise(rows, ordered: bool, lists: dict[int, str] | None = None) -> Outcome:
    out = Outcome(kept=[])
    for row in rows:
        norm = tuple(normalise(v) for v in row)
        if lists:
            norm = tuple(sep.join(sorted(v.split(sep))) if isinstance(v, str) and (sep := lists.get(i)) else v
                         for i, v in enumerate(norm))
        h = hash(norm)
        out.hash = hash((out.hash, h)) if ordered else (out.hash + h) & _MASK
        out.rows += 1
        if len(out.kept) < KEPT_ROWS:
            out.kept.append(norm)
        else:
            out.complete = False
    return out


def _iterate(cursor, size: int = 1000):
    while batch := cursor.fetchmany(size):
        yield from batch


def run_sqlite(conn: sqlite3.Connection, statement: str, ordered: bool, writes: bool,
               lists: dict[int, str] | None = None) -> Outcome:
    """Run on SQLite; a write runs inside a transaction that is rolled back."""
    try:
        if writes:
            conn.execute("BEGIN")
        try:
            cur = conn.execute(statement)
            out = _summarise(_iterate(cur), ordered, lists) if cur.description else Outcome()
            out.rowcount = cur.rowcount if writes else -1
        finally:
            if writes:
                conn.execute("ROLLBACK")
    except sqlite3.Error as e:
        return Outcome(error=str(e).splitlines()[0] if str(e) else type(e).__name__)
    return out


def run_postgres(conn: psycopg.Connection, statement: str, ordered: bool, writes: bool,
                 lists: dict[int, str] | None = None) -> Outcome:
    """Run on PostgreSQL in a transaction that is rolled back (read-only unless `writes`)."""
    try:
        with conn.transaction(force_rollback=True):
            if not writes:
                conn.execute("SET TRANSACTION READ ONLY")
            with conn.cursor() as cur:
                cur.execute(statement)
                out = _summarise(_iterate(cur), ordered, lists) if cur.description else Outcome()
                out.rowcount = cur.rowcount if writes else -1
    except psycopg.Error as e:
        return Outcome(error=(str(e).strip().splitlines() or [type(e).__name__])[0])
    return out


def _list_columns(statement: str) -> dict[int, str]:
    try:
        return list_columns(parse(statement))
    except Untranslatable:
        return {}


def tables_read(statement: str) -> set[str]:
    """Lower-case names of the tables a statement reads (empty when it cannot be parsed)."""
    try:
        tree = parse(statement)
    except Untranslatable:
        return set()
    return {t.name.lower() for t in tree.find_all(exp.Table)}


def ordered(statement: str) -> bool:
    """Whether the statement's result is ordered (a top-level ORDER BY)."""
    try:
        tree = parse(statement)
    except Untranslatable:
        return False
    return tree.args.get("order") is not None


def compare(a: Outcome, b: Outcome, ordered_rows: bool) -> tuple[bool, str]:
    """(equal, detail) of the SQLite outcome `a` and the PostgreSQL outcome `b`."""
    if a.error or b.error:
        if a.error and b.error:
            return True, f"both fail (SQLite: {a.error}; PostgreSQL: {b.error})"
        return False, f"SQLite {'fails: ' + a.error if a.error else f'returns {a.rows} rows'}; " \
                      f"PostgreSQL {'fails: ' + b.error if b.error else f'returns {b.rows} rows'}"
    if a.rowcount != b.rowcount:
        return False, f"SQLite changes {a.rowcount} rows, PostgreSQL {b.rowcount}"
    if a.rows == b.rows and a.hash == b.hash:
        return True, f"{a.rows} equal rows" + (" in the same order" if ordered_rows and a.rows > 1 else "")
    if a.rows != b.rows:
        detail = f"SQLite returns {a.rows} rows, PostgreSQL {b.rows}"
    elif ordered_rows and sorted(map(repr, a.kept)) == sorted(map(repr, b.kept)) and a.complete and b.complete:
        return False, f"the same {a.rows} rows in a different order (collation or ties in ORDER BY)"
    else:
        detail = f"{a.rows} rows on both sides, with different values"
    if a.complete and b.complete:
        only_a = list((Counter(a.kept) - Counter(b.kept)).elements())[:3]
        only_b = list((Counter(b.kept) - Counter(a.kept)).elements())[:3]
        detail += f"; only in SQLite: {only_a}; only in PostgreSQL: {only_b}"
    return False, detail


def run_statement(sqlite_conn: sqlite3.Connection, pg_conn: psycopg.Connection, stmt: ParityStatement,
                  target: Target) -> ParityResult:
    """Run one parity statement on both sides and compare."""
    sqlite_sql = stmt.sqlite_sql or stmt.sql
    started = time.perf_counter()
    if stmt.sqlite_sql:
        pg_sql = stmt.sql
    else:
        try:
            pg_sql = translate_query(stmt.sql, target)
        except Untranslatable as e:
            return ParityResult(stmt.name, False, f"no PostgreSQL translation: {e}", "", sqlite_sql, stmt.blocking)
    in_order, lists = ordered(sqlite_sql), _list_columns(sqlite_sql)
    a = run_sqlite(sqlite_conn, sqlite_sql, in_order, stmt.writes, lists)
    b = run_postgres(pg_conn, pg_sql, in_order, stmt.writes, lists)
    passed, detail = compare(a, b, in_order)
    return ParityResult(stmt.name, passed, detail, pg_sql, sqlite_sql, stmt.blocking,
                        round((time.perf_counter() - started) * 1000, 1))


def compare_view(sqlite_conn: sqlite3.Connection, pg_conn: psycopg.Connection, view: str, pg_relation: str,
                 lists: dict[int, str] | None = None) -> tuple[bool, str]:
    """(equal, detail) of a view's rows on both sides, as multisets; the parts of `lists` columns
    (position → separator: group_concat results) in any order."""
    a = run_sqlite(sqlite_conn, f"SELECT * FROM {quote(view)}", False, False, lists)
    b = run_postgres(pg_conn, f"SELECT * FROM {pg_relation}", False, False, lists)
    return compare(a, b, False)


_PARITY_TYPES = ("bigint", "integer", "smallint", "text", "varchar", "char", "double precision", "real", "numeric",
                 "boolean", "bytea", "uuid")


def proposed_statements(tables: list[dict]) -> list[dict]:
    """init's parity statements: rows per table and, for an integer primary key, the 5 newest rows.

    `tables`: {name, primary_key, rows, columns: [{name, pg_type, cast, quarantine}]}. Only columns whose
    values load unchanged are compared; statements on a table expected to quarantine rows warn instead of
    failing the run.
    """
    out = []
    for t in tables:
        blocking = not any(c["quarantine"] for c in t["columns"])
        out.append({"name": f"rows_{t['name']}", "sql": f"SELECT count(*) FROM {quote(t['name'])}",
                    **({} if blocking else {"blocking": False})})
        types = {c["name"]: c["pg_type"] for c in t["columns"]}
        pk = t["primary_key"]
        if len(pk) != 1 or types.get(pk[0]) not in ("bigint", "integer", "smallint"):
            continue
        shown = [c["name"] for c in t["columns"] if c["name"] == pk[0] or (
            not c["cast"] and not c["quarantine"] and c["pg_type"].split("(")[0] in _PARITY_TYPES)]
        out.append({"name": f"newest_{t['name']}",
                    "sql": f"SELECT {', '.join(map(quote, shown))} FROM {quote(t['name'])} "
                           f"ORDER BY {quote(pk[0])} DESC LIMIT 5",
                    **({} if blocking else {"blocking": False})})
    return out
