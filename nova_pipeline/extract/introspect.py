"""Understand any SQLite database and propose a migration spec for review (`init`).

read_schema lists what the file holds (tables, views, triggers, virtual tables
and what is skipped, with why); profile_table observes every column's values in
one aggregate pass per table; propose_spec turns both into a spec mapping that
nova_pipeline.core.spec.parse_spec accepts, plus a TypeReport that says, per column,
what was seen and what was chosen, and warns about everything not migrated.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from nova_pipeline.extract.export import quote
from nova_pipeline.extract.fts import FtsTable, read_fts
from nova_pipeline.core.identifiers import fit_identifier, unique_identifiers
from nova_pipeline.extract.snapshot import connect_readonly
from nova_pipeline.core.sql_translate import TableDefinition, Untranslatable, index_terms, table_definition, translate_expression
from nova_pipeline.extract.typemap import (
    BOOLEAN_WORDS, ColumnProfile, Inference, bson_type, declared_scale, infer_type, profile_needs, translate_default,
)

PG_MAX_COLUMNS = 1600
# Tables a virtual-table module keeps its data in (FTS3/4/5, R*Tree); they go with the virtual table.
_SHADOW_SUFFIXES = {"data", "idx", "content", "docsize", "config", "segments", "segdir", "stat", "node", "parent", "rowid"}
_GENERATED = {2: "virtual", 3: "stored"}


@dataclass(frozen=True)
class Column:
    name: str
    declared: str
    notnull: bool
    default: str | None  # SQL text as written in the CREATE TABLE
    pk: int  # position in the primary key (1-based), 0 when not part of it
    generated: str | None = None  # "virtual" | "stored" for generated columns


@dataclass(frozen=True)
class ForeignKeyInfo:
    columns: list[str]
    references: str
    referenced_columns: list[str] | None  # None: the parent's primary key
    on_delete: str


@dataclass(frozen=True)
class IndexInfo:
    name: str
    columns: list[str | None]  # None for an expression (or rowid) term
    unique: bool
    where: str | None  # partial index predicate, SQLite SQL
    origin: str  # "c" CREATE INDEX, "u" UNIQUE constraint, "pk" PRIMARY KEY
    sql: str | None = None  # the CREATE INDEX text (None for constraint indexes)


@dataclass(frozen=True)
class Table:
    name: str
    columns: list[Column]
    without_rowid: bool
    foreign_keys: list[ForeignKeyInfo]
    indexes: list[IndexInfo]
    row_count: int
    sql: str = ""  # the CREATE TABLE text

    @property
    def primary_key(self) -> list[str]:
        return [c.name for c in sorted((c for c in self.columns if c.pk), key=lambda c: c.pk)]

    @property
    def rowid_alias(self) -> str | None:
        """The INTEGER PRIMARY KEY column that is the rowid (always a non-NULL integer), if any."""
        pk = [c for c in self.columns if c.pk]
        # INTEGER PRIMARY KEY DESC is the one spelling that is not an alias: it gets a 'pk' index.
        if self.without_rowid or len(pk) != 1 or pk[0].declared.upper() != "INTEGER":
            return None
        return None if any(i.origin == "pk" for i in self.indexes) else pk[0].name


@dataclass(frozen=True)
class View:
    name: str
    sql: str


@dataclass(frozen=True)
class Trigger:
    name: str
    table: str
    sql: str


@dataclass(frozen=True)
class VirtualTable:
    name: str
    module: str


@dataclass(frozen=True)
class Skipped:
    name: str
    reason: str


@dataclass(frozen=True)
class SourceSchema:
    tables: list[Table]
    views: list[View]
    triggers: list[Trigger]
    virtual_tables: list[VirtualTable]
    skipped: list[Skipped]
    fts: list[FtsTable] = field(default_factory=list)  # FTS3/4/5 tables; those keeping their text are in `tables` too


def read_schema(conn: sqlite3.Connection) -> SourceSchema:
    """Everything the database holds, in creation order, with skipped objects and their reasons."""
    objects = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY rowid").fetchall()
    virtual = [
        VirtualTable(name, _module(sql)) for kind, name, _, sql in objects
        if kind == "table" and sql and re.match(r"\s*CREATE\s+VIRTUAL\s+TABLE", sql, re.I)
    ]
    shadow_of = {f"{v.name}_{s}".lower(): v for v in virtual for s in _SHADOW_SUFFIXES}
    index_sql = {name: sql for kind, name, _, sql in objects if kind == "index"}
    tables, views, triggers, skipped, fts_tables = [], [], [], [], []
    virtual_names = {v.name for v in virtual}
    for kind, name, tbl_name, sql in objects:
        if kind == "view":
            views.append(View(name, sql))
        elif kind == "trigger":
            triggers.append(Trigger(name, tbl_name, sql))
        elif kind != "table":
            continue
        elif name.lower().startswith("sqlite_"):
            skipped.append(Skipped(name, "SQLite internal table"))
        elif name in virtual_names and (fts := read_fts(conn, name, sql)) is not None:
            fts_tables.append(fts)
            if fts.migrated_as_table:
                rows = conn.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()[0]
                columns = [Column(c, "", False, None, 0) for c in fts.columns]
                tables.append(Table(name, columns, False, [], [], rows, fts.table_sql()))
            else:
                skipped.append(Skipped(name, fts.skip_reason()))
        elif name in virtual_names:
            skipped.append(Skipped(name, f"virtual table ({_module(sql)}); PostgreSQL has no equivalent"))
        elif name.lower() in shadow_of:
            v = shadow_of[name.lower()]
            skipped.append(Skipped(name, f"shadow table of virtual table {v.name} ({v.module})"))
        else:
            tables.append(_read_table(conn, name, sql, index_sql))
    return SourceSchema(tables, views, triggers, virtual, skipped, fts_tables)


def _module(sql: str) -> str:
    m = re.search(r"\bUSING\s+([\w]+)", sql, re.I)
    return m.group(1).lower() if m else "unknown"


def _read_table(conn: sqlite3.Connection, name: str, sql: str, index_sql: dict[str, str]) -> Table:
    columns = [
        Column(n, declared or "", bool(notnull), default, pk, _GENERATED.get(hidden))
        for _, n, declared, notnull, default, pk, hidden in conn.execute("SELECT * FROM pragma_table_xinfo(?)", (name,))
    ]
    fks: dict[int, list] = {}
    fk_rows = conn.execute("SELECT * FROM pragma_foreign_key_list(?) ORDER BY id, seq", (name,))
    for fk_id, _, parent, src, dst, _, on_delete, _ in fk_rows:
        fks.setdefault(fk_id, [parent, [], [], on_delete.lower()])
        fks[fk_id][1].append(src)
        fks[fk_id][2].append(dst)
    foreign_keys = [
        ForeignKeyInfo(src, parent, None if all(d is None for d in dst) else dst, on_delete)
        for parent, src, dst, on_delete in fks.values()
    ]
    indexes = []
    for _, index, unique, origin, partial in conn.execute("SELECT * FROM pragma_index_list(?)", (name,)).fetchall():
        terms = conn.execute("SELECT cid, name FROM pragma_index_xinfo(?) WHERE key ORDER BY seqno", (index,)).fetchall()
        where = _partial_predicate(index_sql.get(index) or "") if partial else None
        indexes.append(IndexInfo(index, [n if cid >= 0 else None for cid, n in terms], bool(unique), where, origin,
                                 index_sql.get(index)))
    indexes.reverse()  # index_list lists the newest first
    rows = conn.execute(f"SELECT count(*) FROM {quote(name)}").fetchone()[0]
    without_rowid = re.search(r"\bWITHOUT\s+ROWID\b", sql[sql.rfind(")"):], re.I) is not None
    return Table(name, columns, without_rowid, foreign_keys, indexes, rows, sql)


def _partial_predicate(sql: str) -> str | None:
    """The WHERE clause of a CREATE INDEX, found outside quotes and parentheses."""
    depth, i = 0, 0
    while i < len(sql):
        ch = sql[i]
        if ch in "'\"`[":
            close = "]" if ch == "[" else ch
            i = sql.find(close, i + 1)
            if i < 0:
                return None
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and re.match(r"WHERE\b", sql[i:i + 6], re.I) and not (sql[i - 1].isalnum() or sql[i - 1] == "_"):
            return sql[i + 5:].strip() or None
        i += 1
    return None


_UUID_GLOB = "-".join("[0-9a-fA-F]" * n for n in (8, 4, 4, 4, 12))
_DATE_GLOB = "[0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]"
_TIME_GLOB = "[0-2][0-9]:[0-5][0-9]"
_COMMON_TESTS = ("integers", "reals", "texts", "blobs")
_NUMBERS = ("integer", "real")
# Per-row tests: storage classes they apply to, and a 0/1 condition on {q}, the quoted column.
# SQLite does not short-circuit AND inside expressions, so the class is tested once, in a CASE.
_COUNTERS = {
    "integers": (("integer",), "1"),
    "reals": (("real",), "1"),
    "texts": (("text",), "1"),
    "blobs": (("blob",), "1"),
    "text_nul": (("text",), "instr(CAST({q} AS BLOB), x'00') > 0"),
    "ints_01": (("integer",), "{q} IN (0, 1)"),
    "reals_integral": (("real",), "abs({q}) < 9.2e18 AND {q} = CAST({q} AS INTEGER)"),
    # +x has no affinity, so comparing it with a CAST applies numeric affinity: only well-formed numbers convert.
    "text_integers": (("text",), "+{q} = CAST({q} AS INTEGER) AND {q} NOT GLOB '*[.eE]*'"),
    "text_numbers": (("text",), "+{q} = CAST({q} AS REAL)"),
    "text_dates": (("text",), f"{{q}} GLOB '{_DATE_GLOB}'"),
    "text_datetimes": (("text",), f"{{q}} GLOB '{_DATE_GLOB}[ T]{_TIME_GLOB}*'"),
    "text_times": (("text",), f"{{q}} GLOB '{_TIME_GLOB}*'"),
    "text_booleans": (("text",), f"lower(trim({{q}})) IN ({', '.join(repr(w) for w in BOOLEAN_WORDS)})"),
    "text_uuids": (("text",), f"{{q}} GLOB '{_UUID_GLOB}'"),
    "text_json": (("text",), "json_valid({q})"),
    "blobs_16": (("blob",), "length({q}) = 16"),
    "epoch_seconds": (_NUMBERS, "{q} BETWEEN 1e8 AND 4.2e9"),
    "epoch_millis": (_NUMBERS, "{q} BETWEEN 1e11 AND 4.2e12"),
    "julian_days": (("real",), "{q} BETWEEN 2400000.5 AND 2500000.5"),
    "over_scale": (_NUMBERS, "round({q}, {scale}) <> {q}"),
}
# SQLite before 3.42 writes ±Infinity in json_array() as the bare words Inf/-Inf (not JSON; Python reads Infinity).
_INF = re.compile(r"(?<![A-Za-z])(-?)Inf\b")
# SQLite orders NULL < numbers < text < blob, so plain min/max give the numeric range without a
# per-row CASE (max is not a number when text or blobs are present: then it is NULL).
# Lengths cover every value: numbers and blobs become text in a text column too.
_AGGREGATES = {
    "num_min": "CASE WHEN typeof(min({q})) IN ('integer', 'real') THEN min({q}) END",
    "num_max": "CASE WHEN typeof(max({q})) IN ('integer', 'real') THEN max({q}) END",
    "max_text_bytes": "max(length(CAST({q} AS BLOB)))",
    "max_text_chars": "max(length({q}))",
}


def _column_sql(c: Column, width: int) -> tuple[str, list[str], list[str]]:
    """One json_array of a column's aggregates, and the counter and aggregate names it holds, in order.

    Aggregate steps and typeof() calls dominate the cost of a scan, so the 0/1
    tests are packed `width` bits apart into shared sum()s over one CASE on
    typeof(): each count is at most the row count < 2**width, so fields never
    carry into each other and a sum stays below 2**63.
    """
    scale = declared_scale(c.declared)
    q = quote(c.name)
    needs = [n for n in profile_needs(c.declared) if n != "over_scale" or scale]
    counters = [*_COMMON_TESTS, *(n for n in needs if n in _COUNTERS)]
    aggregates = [n for n in needs if n in _AGGREGATES]
    per_sum = 63 // width
    sums = []
    for start in range(0, len(counters), per_sum):
        branches = {}
        for i, name in enumerate(counters[start:start + per_sum]):
            classes, condition = _COUNTERS[name]
            term = f"(({condition.format(q=q, scale=scale[1] if scale else 0)}) << {width * i})"
            for storage_class in classes:
                branches.setdefault(storage_class, []).append(term)
        whens = " ".join(f"WHEN '{k}' THEN {' + '.join(v)}" for k, v in branches.items())
        sums.append(f"sum(CASE typeof({q}) {whens} ELSE 0 END)")
    return f"json_array({', '.join(sums + [_AGGREGATES[n].format(q=q) for n in aggregates])})", counters, aggregates


def next_rowid(conn: sqlite3.Connection, table: str, column: str) -> int:
    """The key SQLite hands out next for an INTEGER PRIMARY KEY: max(key) + 1 (1 when empty), and for an
    AUTOINCREMENT table at least sqlite_sequence.seq + 1 (a deleted largest key is never reused)."""
    top = conn.execute(f"SELECT max({quote(column)}) FROM {quote(table)}").fetchone()[0]
    candidates = [1 if top is None else int(top) + 1]
    if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_sequence'").fetchone():
        seq = conn.execute("SELECT max(seq) FROM sqlite_sequence WHERE name = ? COLLATE NOCASE", (table,)).fetchone()[0]
        if seq is not None:
            candidates.append(int(seq) + 1)
    return max(candidates)


_STORED = ("integer", "real", "text")  # blob = non-null - these; null = rows - non-null
_MAX_AGGREGATES = 2000  # SQLite's limit of aggregate terms in one query


def storage_counts(conn: sqlite3.Connection, table: str, columns: list[str], *, rowid_alias: str | None = None,
                   rowids: tuple[int, int] | None = None) -> dict[str, dict[str, int]]:
    """Rows per storage class (null, integer, real, text, blob) of each column, with no value tests:
    what a migration's casts will meet, cheaper than profile_table (docs/performance.md). One pass unless the table
    has more columns than one query may aggregate; `rowids` = (first, last) counts only the rows of that
    range of `rowid_alias` (parts of a large table can then be counted side by side)."""
    where = f" WHERE {quote(rowid_alias)} BETWEEN {int(rowids[0])} AND {int(rowids[1])}" if rowids else ""
    if rowids and not rowid_alias:
        raise ValueError(f"table {table!r}: a rowid range needs its INTEGER PRIMARY KEY column")
    with _one_state(conn):
        rows = conn.execute(f"SELECT count(*) FROM {quote(table)}{where}").fetchone()[0]
        width = max(rows.bit_length(), 1)
        per_sum = max(1, min(len(_STORED), 63 // width))  # counts packed `width` bits apart never carry
        groups = [_STORED[i:i + per_sum] for i in range(0, len(_STORED), per_sum)]
        scanned = [c for c in columns if c != rowid_alias]
        terms = [", ".join([f"count({quote(c)})"] + [
            f"sum(CASE typeof({quote(c)}) {' '.join(f'WHEN {k!r} THEN {1 << (width * j)}' for j, k in enumerate(g))}"
            " ELSE 0 END)" for g in groups]) for c in scanned]
        step = _MAX_AGGREGATES // (1 + len(groups))
        found = [v for i in range(0, len(terms), step) for v in conn.execute(
            f"SELECT {', '.join(terms[i:i + step])} FROM {quote(table)}{where}").fetchone()]
    out = {rowid_alias: {"null": 0, "integer": rows, "real": 0, "text": 0, "blob": 0}}
    mask, per_column = (1 << width) - 1, 1 + len(groups)
    for i, c in enumerate(scanned):
        stored, *packed = found[i * per_column:(i + 1) * per_column]
        counts = {k: ((total or 0) >> (width * j)) & mask for g, total in zip(groups, packed) for j, k in enumerate(g)}
        out[c] = {"null": rows - stored, **counts, "blob": stored - sum(counts.values())}
    return {c: out[c] for c in columns}


def rowid_ranges(conn: sqlite3.Connection, table: Table, rows: int, part_rows: int) -> list[tuple[int, int] | None]:
    """Ranges of `table`'s INTEGER PRIMARY KEY holding about `part_rows` of its `rows` rows each, for
    storage_counts(rowids=...); [None] (the whole table) when it is small or has no such key."""
    if rows <= part_rows or not table.rowid_alias:
        return [None]
    key = quote(table.rowid_alias)
    first, last = conn.execute(f"SELECT min({key}), max({key}) FROM {quote(table.name)}").fetchone()
    step = -(-(last - first + 1) * part_rows // rows)
    return [(lo, min(lo + step - 1, last)) for lo in range(first, last + 1, step)]


def sum_storage_counts(parts: list[dict[str, dict[str, int]]]) -> dict[str, dict[str, int]]:
    """The storage_counts of a whole table from those of its rowid ranges."""
    return {c: {k: sum(p[c][k] for p in parts) for k in parts[0][c]} for c in parts[0]}


@contextmanager
def _one_state(conn: sqlite3.Connection) -> Iterator[None]:
    """The count and the pass see the same state of the database (so the packing width holds)."""
    own = not conn.in_transaction
    if own:
        conn.execute("BEGIN")
    try:
        yield
    finally:
        if own:
            conn.execute("COMMIT")


def profile_table(conn: sqlite3.Connection, table: str, columns: list[Column], *,
                  rowid_alias: str | None = None) -> dict[str, ColumnProfile]:
    """Per-column storage classes and the value tests type inference needs, in one aggregate pass over the table.

    `rowid_alias` names an INTEGER PRIMARY KEY column (Table.rowid_alias): it holds only
    integers by construction, so it is not scanned.
    """
    scanned = [c for c in columns if c.name != rowid_alias]
    with _one_state(conn):
        rows = conn.execute(f"SELECT count(*) FROM {quote(table)}").fetchone()[0]
        width = max(rows.bit_length(), 1)
        plans = [_column_sql(c, width) for c in scanned]
        select = ", ".join(sql for sql, _, _ in plans)
        packed = conn.execute(f"SELECT {select} FROM {quote(table)}").fetchone() if plans else ()
    out = {rowid_alias: ColumnProfile(rows=rows, integers=rows)}
    for column, (_, counters, aggregates), text in zip(scanned, plans, packed):
        values = json.loads(_INF.sub(r"\1Infinity", text))
        sums, rest = values[: len(values) - len(aggregates)], values[len(values) - len(aggregates):]
        per_sum, mask = 63 // width, (1 << width) - 1
        found = {n: ((sums[i // per_sum] or 0) >> (width * (i % per_sum))) & mask for i, n in enumerate(counters)}
        found.update(zip(aggregates, rest))
        stored = found["integers"] + found["reals"] + found["texts"] + found["blobs"]
        out[column.name] = ColumnProfile(rows=rows, nulls=rows - stored, **found)
    return {c.name: out[c.name] for c in columns}


@dataclass
class ColumnReport:
    column: str
    target_name: str
    declared: str
    storage: dict[str, int]
    pg_type: str
    bson_type: str
    rows_needing_cast: int
    rows_to_quarantine: int
    note: str


@dataclass
class TableReport:
    table: str
    target_table: str
    rows: int
    without_rowid: bool
    primary_key: list[str]
    columns: list[ColumnReport]
    will_fail: str | None = None
    identity: str | None = None  # the identity column and where it restarts
    checks: list[dict] = field(default_factory=list)  # {sqlite, sql} translated or {sqlite, reason}
    indexes: list[dict] = field(default_factory=list)  # {name, sql} translated or {name, sqlite, reason}


@dataclass
class TypeReport:
    """What init saw and chose, per table and column, and what it did not migrate."""

    source: str
    tables: list[TableReport] = field(default_factory=list)
    views: list[str] = field(default_factory=list)
    triggers: list[str] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    profile_seconds: float = 0.0
    app_objects: list[dict] = field(default_factory=list)  # views, triggers, FTS: PostgreSQL SQL or reason

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_markdown(self) -> str:
        lines = [f"# Type report: {self.source}", ""]
        if self.warnings:
            lines += ["## Warnings", "", *(f"- {_md(w)}" for w in self.warnings), ""]
        if self.skipped:
            lines += ["## Skipped", "", *(f"- `{_md(s['name'])}`: {_md(s['reason'])}" for s in self.skipped), ""]
        if self.app_objects:
            lines += ["## Views, triggers, full-text search", "", *_objects_markdown(self.app_objects), ""]
        for t in self.tables:
            title = f"## {_md(t.table)}" + (f" → {_md(t.target_table)}" if t.target_table != t.table else "")
            lines += [f"{title} ({t.rows} rows)", ""]
            if t.will_fail:
                lines += [f"**Will fail:** {_md(t.will_fail)}", ""]
            lines += [
                f"Primary key: {', '.join(t.primary_key) or '(none)'}" + (" · WITHOUT ROWID" if t.without_rowid else ""), "",
                "| column | declared | storage classes | PostgreSQL | BSON | cast | quarantine | note |",
                "|---|---|---|---|---|---:|---:|---|",
            ]
            for c in t.columns:
                storage = ", ".join(f"{k} {n}" for k, n in c.storage.items() if n) or "(empty)"
                name = c.column if c.target_name == c.column else f"{c.column} → {c.target_name}"
                lines.append(f"| {_md(name)} | {_md(c.declared)} | {storage} | {c.pg_type} | {c.bson_type} "
                             f"| {c.rows_needing_cast} | {c.rows_to_quarantine} | {_md(c.note)} |")
            lines.append("")
            lines += _schema_markdown(t)
        if any(c.note.startswith("COLLATE NOCASE") for t in self.tables for c in t.columns):
            lines += ["## Collations", "", COLLATION_NOTE, ""]
        return "\n".join(lines)


COLLATION_NOTE = (
    "COLLATE NOCASE columns keep their meaning, the first way the target server allows (chosen by measurement "
    "on PostgreSQL 15 with ICU and contrib): (1) `citext` (the extension is trusted: a database owner may install "
    "it): `=`, `IN`, ORDER BY, UNIQUE and `LIKE` ignore case as in SQLite; only a comparison with an explicit "
    "`::text` value is case-sensitive. (2) Without citext but with ICU, the nondeterministic collation "
    "`nova_nocase` (ICU `und-u-ks-level2`): `=`, ORDER BY and UNIQUE ignore case and the column stays text, but "
    "`LIKE` and `ILIKE` on the column fail (\"nondeterministic collations are not supported for LIKE\"; write "
    "`col COLLATE \"default\" ILIKE ...`), which is why citext comes first. (3) With neither (the embedded "
    "pgserver build: \"ICU is not supported in this build\", no citext), UNIQUE indexes use `lower(col)` "
    "(duplicates differing in case are still rejected) and comparisons stay case-sensitive: partial, said in the "
    "setup actions and the constraints report.")


def _schema_markdown(t: TableReport) -> list[str]:
    """The table's keys, CHECKs and indexes: what is carried over as which SQL, and what is not and why."""
    carried, not_carried = [], []
    if t.identity:
        carried.append(f"identity: {_md(t.identity)}")
    for c in t.checks:
        if c.get("sql"):
            carried.append(f"CHECK `{_md(c['sqlite'])}` → `{_md(c['sql'])}`")
        else:
            not_carried.append(f"CHECK `{_md(c['sqlite'])}`: {_md(c['reason'])}")
    for i in t.indexes:
        if i.get("sql"):
            carried.append(f"index {_md(i['name'])}: `{_md(i['sql'])}`")
        else:
            not_carried.append(f"index {_md(i['name'])} `{_md(i['sqlite'])}`: {_md(i['reason'])}")
    out = []
    if carried:
        out += ["Carried over:", "", *(f"- {x}" for x in carried), ""]
    if not_carried:
        out += ["**Not translated:**", "", *(f"- {x}" for x in not_carried), ""]
    return out


def _objects_markdown(objects: list[dict]) -> list[str]:
    lines = []
    for o in objects:
        if o["reason"] is None:
            lines += [f"- {o['kind']} `{_md(o['name'])}`, in PostgreSQL:", "", "  ```sql",
                      *(f"  {line}" for s in o["statements"] for line in (s + ";").splitlines()), "  ```"]
        else:
            lines += [f"- {o['kind']} `{_md(o['name'])}` **not carried over**: {_md(o['reason'])}", "", "  ```sql",
                      f"  {' '.join(o['sqlite_sql'].split())}", "  ```"]
    return lines


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def propose_tables(sqlite_path: str | Path, *, postgres_schema: str = "public") -> tuple[dict, TypeReport, SourceSchema]:
    """A spec mapping (for parse_spec) proposing every table → PostgreSQL, the TypeReport behind it, and the schema read."""
    conn = connect_readonly(Path(sqlite_path))
    try:
        schema = read_schema(conn)
        started = time.perf_counter()
        profiles = {t.name: profile_table(conn, t.name, t.columns, rowid_alias=t.rowid_alias) for t in schema.tables}
        seconds = time.perf_counter() - started
        next_ids = {t.name: next_rowid(conn, t.name, t.rowid_alias) for t in schema.tables if t.rowid_alias}
    finally:
        conn.close()
    report = TypeReport(
        source=str(sqlite_path),
        views=[v.name for v in schema.views],
        triggers=[t.name for t in schema.triggers],
        skipped=[dataclasses.asdict(s) for s in schema.skipped],
        profile_seconds=round(seconds, 3),
    )
    inferred = {t.name: {c.name: infer_type(c.declared, profiles[t.name][c.name]) for c in t.columns} for t in schema.tables}
    tables = {}
    # Unique across tables too: two source names that shorten to the same identifier would share one target table.
    target_names = unique_identifiers([t.name for t in schema.tables])
    for t, target_table in zip(schema.tables, target_names):
        spec, table_report = _propose_table(t, target_table, profiles[t.name], inferred, schema, report.warnings,
                                            next_ids.get(t.name))
        tables[t.name] = spec
        report.tables.append(table_report)
    spec = {
        "source": {"sqlite": str(sqlite_path)},
        "targets": {"postgres": {"url": "env:NOVA_POSTGRES_URL", "schema": postgres_schema}},
        "tables": tables,
    }
    return spec, report, schema


def _definition(t: Table, warnings: list[str]) -> TableDefinition:
    """CHECKs, collations and generation expressions of the table's SQL; none (with a warning) when unreadable."""
    try:
        return table_definition(t.sql)
    except Untranslatable as e:
        warnings.append(f"table {t.name}: its CREATE TABLE could not be read ({e}); its CHECKs, collations and "
                        "generation expressions are not carried over")
        return TableDefinition([], {}, {}, False)


def _propose_table(t: Table, target_table: str, profiles: dict[str, ColumnProfile],
                   inferred: dict[str, dict[str, Inference]], schema: SourceSchema,
                   warnings: list[str], next_id: int | None = None) -> tuple[dict, TableReport]:
    pk = t.primary_key
    target_names = unique_identifiers([c.name for c in t.columns])
    names = {c.name.lower(): target for c, target in zip(t.columns, target_names)}
    types = {c.name.lower(): inferred[t.name][c.name].pg_type for c in t.columns}
    definition = _definition(t, warnings)
    columns, reports = {}, []
    identity = None
    for c, target in zip(t.columns, target_names):
        inf, profile = inferred[t.name][c.name], profiles[c.name]
        notes = [inf.note] if inf.note else []
        quarantine = inf.rows_to_quarantine
        col: dict = {"type": inf.pg_type, "declared": c.declared, "nullable": not (c.notnull or c.pk)}
        if c.pk and profile.nulls:
            quarantine += profile.nulls
            notes.append(f"{profile.nulls} NULLs in primary key column; those rows will be quarantined")
            warnings.append(f"{t.name}.{c.name}: {profile.nulls} rows have a NULL primary key and will be quarantined")
        if c.name == t.rowid_alias and inf.pg_type in ("smallint", "integer", "bigint"):
            col["identity"] = True
            how = "max(id) + 1, past sqlite_sequence (AUTOINCREMENT)" if definition.autoincrement else "max(id) + 1"
            identity = f"{c.name} GENERATED BY DEFAULT AS IDENTITY, restarted after the load at {how}: {next_id} now"
            notes.append("identity (INTEGER PRIMARY KEY)")
        collation = definition.collations.get(c.name.lower())
        if collation == "NOCASE" and _family(inf.pg_type) == "text":
            col["collate"] = "nocase"
            notes.append("COLLATE NOCASE kept (see Collations)")
        elif collation not in (None, "BINARY", "NOCASE"):
            notes.append(f"COLLATE {collation} not carried: PostgreSQL compares this column exactly")
            warnings.append(f"{t.name}.{c.name}: COLLATE {collation} has no PostgreSQL equivalent; compared exactly")
        elif collation == "NOCASE":
            notes.append(f"COLLATE NOCASE not carried: the column is {inf.pg_type}, not text")
        expression = definition.generated.get(c.name.lower())
        if c.generated and expression is not None:
            try:
                col["generated"] = translate_expression(expression, names, types)
                notes.append(f"generated ({c.generated}) in SQLite: GENERATED ALWAYS AS ({col['generated']}) STORED")
            except Untranslatable as e:
                notes.append(f"generated ({c.generated}) in SQLite as {expression}; not translated ({e}): "
                             "migrated as a plain column holding the computed value")
                warnings.append(f"{t.name}.{c.name}: generated column {expression} not translated ({e}); "
                                "new rows will not compute it")
        elif c.generated:
            notes.append(f"generated ({c.generated}) in SQLite; migrated as a plain column holding the computed value")
        elif c.default is not None:
            default, warning = translate_default(c.default, inf.pg_type)
            if default is not None:
                col["default"] = default
            if warning:
                warnings.append(f"{t.name}.{c.name}: {warning}")
                notes.append(warning)
        if inf.parse:
            col["parse"] = list(inf.parse)
        if target != c.name:
            col["name"] = target
            warnings.append(f"{t.name}.{c.name}: renamed to {target} (PostgreSQL identifiers hold 63 bytes and must be unique)")
        columns[c.name] = col
        reports.append(ColumnReport(c.name, target, c.declared, profile.storage(), inf.pg_type, bson_type(inf.pg_type),
                                    inf.rows_needing_cast, quarantine, "; ".join(notes)))
    spec: dict = {"target": "postgres"}
    if target_table != t.name:
        spec["table"] = target_table
        why = "PostgreSQL identifiers hold 63 bytes" if target_table == fit_identifier(t.name) else "another table has that name"
        warnings.append(f"table {t.name}: renamed to {target_table} ({why})")
    checks, check_reports = _checks(t, definition, names, types, warnings)
    indexes, index_reports = _indexes(t, warnings, names, types)
    spec.update(primary_key=pk, columns=columns,
                foreign_keys=_foreign_keys(t, inferred, schema, warnings), indexes=indexes)
    if checks:
        spec["checks"] = checks
    will_fail = None
    if len(t.columns) > PG_MAX_COLUMNS:
        will_fail = f"{len(t.columns)} columns; PostgreSQL tables hold at most {PG_MAX_COLUMNS}"
        warnings.append(f"table {t.name}: {will_fail}, so creating it will fail (split it or move it to MongoDB)")
    return spec, TableReport(t.name, target_table, t.row_count, t.without_rowid, pk, reports, will_fail,
                             identity, check_reports, index_reports)


def _checks(t: Table, definition: TableDefinition, names: dict[str, str], types: dict[str, str],
            warnings: list[str]) -> tuple[list[dict], list[dict]]:
    """The table's CHECKs for the spec (translated, or kept with the reason) and for the type report."""
    out, reports = [], []
    for name, text in definition.checks:
        check: dict = {"sqlite": text}
        if name:
            check["name"] = fit_identifier(name)
        try:
            check["sql"] = translate_expression(text, names, types)
        except Untranslatable as e:
            check["reason"] = str(e)
            warnings.append(f"{t.name}: CHECK ({text}) not translated: {e}")
        out.append(check)
        reports.append({"sqlite": text, "sql": check.get("sql"), "reason": check.get("reason")})
    return out, reports


def _family(pg_type: str) -> str:
    base = pg_type.split("(")[0]
    return {"bigint": "number", "integer": "number", "smallint": "number", "numeric": "number",
            "double precision": "number", "real": "number", "varchar": "text", "char": "text"}.get(base, base)


def _foreign_keys(t: Table, inferred: dict[str, dict[str, Inference]], schema: SourceSchema,
                  warnings: list[str]) -> list[dict]:
    """Foreign keys PostgreSQL can hold; the others are dropped with a warning naming why."""
    by_name = {x.name.lower(): x for x in schema.tables}
    out = []
    for fk in t.foreign_keys:
        where = f"{t.name}: foreign key ({', '.join(fk.columns)}) → {fk.references}"
        parent = by_name.get(fk.references.lower())
        if parent is None:
            warnings.append(f"{where} dropped: the referenced table is not migrated")
            continue
        parent_cols = {c.name.lower(): c.name for c in parent.columns}
        referenced = parent.primary_key
        if fk.referenced_columns:
            referenced = [parent_cols.get(c.lower(), c) for c in fk.referenced_columns]
        unique_keys = [{c.lower() for c in parent.primary_key}] + [
            {c.lower() for c in i.columns if c} for i in parent.indexes if i.unique and i.where is None and None not in i.columns]
        if not referenced or {c.lower() for c in referenced} not in unique_keys:
            warnings.append(f"{where} dropped: PostgreSQL needs the referenced columns to be a primary key or unique")
            continue
        child_cols = {c.name.lower(): c.name for c in t.columns}
        columns = [child_cols.get(c.lower(), c) for c in fk.columns]
        mismatched = [
            (c, r) for c, r in zip(columns, referenced)
            if _family(inferred[t.name][c].pg_type) != _family(inferred[parent.name][r].pg_type)
        ]
        if mismatched:
            c, r = mismatched[0]
            warnings.append(f"{where} dropped: {c} is {inferred[t.name][c].pg_type} but {parent.name}.{r} is "
                            f"{inferred[parent.name][r].pg_type}")
            continue
        out.append({"columns": columns, "references": parent.name, "referenced_columns": referenced, "on_delete": fk.on_delete})
    return out


def _indexes(t: Table, warnings: list[str], names: dict[str, str] | None = None,
             types: dict[str, str] | None = None) -> tuple[list[dict], list[dict]]:
    """Secondary indexes and UNIQUE constraints (the primary key's own index is implied), expression terms and
    partial predicates translated; and, for the type report, each CREATE INDEX's SQL or why it was not translated."""
    out, reports = [], []
    for i in t.indexes:
        if i.origin == "pk":
            continue
        index: dict = {"columns": list(i.columns), "unique": i.unique}
        if i.origin == "c":
            index["name"] = fit_identifier(i.name)
            if index["name"] != i.name:
                warnings.append(f"{t.name}: index {i.name} renamed to {index['name']} (PostgreSQL identifiers hold 63 bytes)")
        if i.sql and (None in i.columns or i.where):
            try:
                terms, where = index_terms(i.sql)
                translated = [translate_expression(text, names, types) + (" DESC" if desc else "")
                              for text, desc in terms]
                if None in i.columns:
                    index = {"expressions": translated, **{k: v for k, v in index.items() if k != "columns"}}
                if where:
                    index["where"] = translate_expression(where, names, types)
            except Untranslatable as e:
                warnings.append(f"{t.name}: index {i.name} not translated ({e}): {i.sql}")
                reports.append({"name": i.name, "sqlite": i.sql, "reason": str(e)})
                continue
        elif None in i.columns:
            warnings.append(f"{t.name}: index {i.name} on the rowid or an unreadable expression dropped")
            reports.append({"name": i.name, "sqlite": i.sql or "", "reason": "no index SQL to translate"})
            continue
        terms = index.get("expressions") or [f'"{(names or {}).get(c.lower(), c)}"' for c in index["columns"]]
        described = f"{'UNIQUE ' if i.unique else ''}({', '.join(terms)})"
        reports.append({"name": i.name, "sql": described + (f" WHERE {index['where']}" if index.get("where") else "")})
        out.append(index)
    return out, reports
