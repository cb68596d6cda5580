"""SQLite FTS3/4/5 tables → PostgreSQL full-text search.

An FTS table that keeps its own text becomes a table of the same name and
columns (its rows migrate like any table's) plus a generated `tsvector`
column over the indexed columns (in its CREATE TABLE, so the load computes
it), and a GIN index on it after the load.
An external-content FTS table (`content=notes`) holds no rows of its own: the
content table gets a GIN index on the same `tsvector` expression and a view of
the FTS table's name shows the key, the columns and the `tsvector`. A
contentless FTS table (`content=''`) keeps no text SQLite could give back, so
it is reported, not migrated. MATCH becomes `@@ websearch_to_tsquery(...)`.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from psycopg import sql

from nova_pipeline.core.identifiers import fit_identifier, pg_table, target_column
from nova_pipeline.extract.snapshot import quote
from nova_pipeline.core.spec import FullText, Spec

FTS_MODULES = ("fts3", "fts4", "fts5")
SHADOW_SUFFIXES = {"fts3": ("content", "segments", "segdir"),
                   "fts4": ("content", "segments", "segdir", "docsize", "stat"),
                   "fts5": ("data", "idx", "content", "docsize", "config")}


@dataclass(frozen=True)
class FtsTable:
    """What an FTS virtual table holds and how it tokenizes."""

    name: str
    module: str
    columns: list[str]  # visible columns, in order
    indexed: list[str]  # the columns MATCH searches (FTS5 UNINDEXED / FTS4 notindexed= left out)
    config: str  # the PostgreSQL text search configuration closest to its tokenizer
    content: str | None  # None: keeps its own text; "": contentless; else the external content table
    content_rowid: str | None  # the content table's column that is the FTS rowid (external content)
    note: str = ""  # where PostgreSQL's search differs

    @property
    def migrated_as_table(self) -> bool:
        return self.content is None

    def table_sql(self) -> str:
        """A CREATE TABLE text of the columns SQLite shows (FTS columns have no type and no constraints)."""
        return f"CREATE TABLE {quote(self.name)} ({', '.join(quote(c) for c in self.columns)})"

    def skip_reason(self) -> str:
        if self.content == "":
            return f"contentless {self.module} table: SQLite keeps no copy of its text, so there are no rows to migrate"
        return (f"external-content {self.module} table over {self.content}: its rows are {self.content}'s; "
                f"it becomes a full-text index on {self.content} and a view named {self.name}")


def _arguments(create_sql: str) -> list[str]:
    """The module arguments of a CREATE VIRTUAL TABLE, split on top-level commas."""
    start = create_sql.find("(")
    if start < 0:
        return []
    args, depth, quote_char, current = [], 0, None, ""
    for ch in create_sql[start + 1:]:
        if quote_char:
            quote_char = None if ch == quote_char else quote_char
        elif ch in "'\"`[":
            quote_char = "]" if ch == "[" else ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            if depth == 0:
                break
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(current.strip())
            current = ""
            continue
        current += ch
    return [a for a in args + [current.strip()] if a]


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] in "'\"`[" and text[-1] in "'\"`]":
        return text[1:-1]
    return text


def read_fts(conn: sqlite3.Connection, name: str, create_sql: str) -> FtsTable | None:
    """The FTS table `name` (None when the virtual table is not FTS3/4/5)."""
    m = re.search(r"\bUSING\s+(\w+)", create_sql, re.I)
    module = m.group(1).lower() if m else ""
    if module not in FTS_MODULES:
        return None
    try:
        columns = [n for _, n, *_rest, hidden in conn.execute("SELECT * FROM pragma_table_xinfo(?)", (name,)) if not hidden]
    except sqlite3.Error:  # e.g. a tokenizer this SQLite does not have: treated as any other virtual table
        return None
    options, unindexed = {}, set()
    for arg in _arguments(create_sql):
        key, eq, value = arg.partition("=")
        if eq and re.fullmatch(r"\s*\w+\s*", key):
            options[key.strip().lower()] = _unquote(value)
        elif re.search(r"\bUNINDEXED\b", arg, re.I):
            unindexed.add(_unquote(arg.split()[0]).lower())
    unindexed |= {_unquote(v).lower() for k, v in options.items() if k == "notindexed"}
    tokenizer = options.get("tokenize", "").lower()
    config = "english" if "porter" in tokenizer else "simple"
    note = ("trigram tokenizer: PostgreSQL's word search does not find substrings; use pg_trgm for LIKE-style search"
            if "trigram" in tokenizer else "")
    content = options.get("content")
    content_rowid = options.get("content_rowid") if content else None
    if content and not content_rowid:
        content_rowid = _rowid_alias(conn, content)
    return FtsTable(name, module, columns, [c for c in columns if c.lower() not in unindexed] or columns, config,
                    content, content_rowid, note)


def _rowid_alias(conn: sqlite3.Connection, table: str) -> str | None:
    pk = [(n, t) for _, n, t, _, _, p in conn.execute(f"PRAGMA table_info({quote(table)})") if p]
    return pk[0][0] if len(pk) == 1 and pk[0][1].upper() == "INTEGER" else None


def vector_expression(columns: list[str], config: str) -> sql.Composed:
    """to_tsvector(config, coalesce(a, '') || ' ' || coalesce(b, '') ...) over target columns."""
    parts = sql.SQL(" || ' ' || ").join(sql.SQL("coalesce({}::text, '')").format(sql.Identifier(c)) for c in columns)
    return sql.SQL("to_tsvector({}::regconfig, {})").format(sql.Literal(config), parts)


def vector_columns(spec: Spec, table: str) -> list[tuple[str, sql.Composed]]:
    """(name, column definition) of the generated tsvector columns of `table` (full-text search over its own
    columns), part of its CREATE TABLE: the load's COPY computes them, no rewrite follows."""
    ts = spec.tables[table]
    return [(f.column, sql.SQL("{} tsvector GENERATED ALWAYS AS ({}) STORED").format(
        sql.Identifier(f.column), vector_expression([target_column(ts, c) for c in f.columns], f.config)))
        for f in ts.fts if f.view is None]


def statements(spec: Spec, table: str, fts: FullText) -> list[sql.Composed]:
    """The DDL, after the load, that gives `table` (a migrated PostgreSQL table) the full-text search `fts`
    describes: the GIN index on its tsvector column, or for external content the expression index and the view."""
    schema, target = pg_table(spec, table)
    ts = spec.tables[table]
    columns = [target_column(ts, c) for c in fts.columns]
    vector = vector_expression(columns, fts.config)
    relation = sql.Identifier(schema, target)
    if fts.view is None:  # the tsvector column itself is in the CREATE TABLE (vector_columns)
        index = fit_identifier(f"{target}_{fts.column}_idx")
        return [sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gin ({})").format(
            sql.Identifier(index), relation, sql.Identifier(fts.column))]
    index = fit_identifier(f"{fts.view}_{fts.column}_idx")
    key = target_column(ts, fts.key) if fts.key else None
    shown = ([key] if key else []) + [c for c in columns if c != key]
    return [
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gin (({}))").format(sql.Identifier(index), relation, vector),
        # CASCADE: views reading it are created again after it, in the same step
        sql.SQL("DROP VIEW IF EXISTS {} CASCADE").format(sql.Identifier(schema, fit_identifier(fts.view))),
        sql.SQL("CREATE VIEW {} AS SELECT {}, {} AS {} FROM {}").format(
            sql.Identifier(schema, fit_identifier(fts.view)), sql.SQL(", ").join(map(sql.Identifier, shown)), vector,
            sql.Identifier(fts.column), relation),
    ]


def search_example(spec: Spec, table: str, fts: FullText) -> str:
    """The PostgreSQL query that replaces `... WHERE <fts table> MATCH 'words'`."""
    schema, target = pg_table(spec, table)
    relation = sql.Identifier(schema, fit_identifier(fts.view) if fts.view else target).as_string(None)
    column = sql.Identifier(fts.column).as_string(None)
    return (f"SELECT * FROM {relation} WHERE {column} @@ websearch_to_tsquery('{fts.config}', 'words') "
            f"ORDER BY ts_rank({column}, websearch_to_tsquery('{fts.config}', 'words')) DESC")


def proposed(fts: FtsTable) -> tuple[str, dict]:
    """(source table that carries it, its spec `fts` entry) for init."""
    if fts.content is None:
        return fts.name, {"columns": list(fts.indexed), "config": fts.config}
    entry = {"columns": list(fts.indexed), "config": fts.config, "view": fts.name}
    if fts.content_rowid:
        entry["key"] = fts.content_rowid
    return fts.content, entry
