"""PostgreSQL DDL from the spec: schemas, tables, partitioned parents and partitions, constraints, indexes.

Tables are created bare (columns, NOT NULL, DEFAULT) so the load can COPY
into them at full speed; primary keys, indexes and foreign keys come after
the data (`add_constraints`). Every identifier goes through
psycopg.sql.Identifier; names of constraints and indexes are deterministic
and fit PostgreSQL's 63 bytes, which is what makes every step idempotent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import psycopg
from psycopg import sql

from nova_pipeline.extract import fts
from nova_pipeline.core.identifiers import fit_identifier, pg_table, target_column, target_columns
from nova_pipeline.extract.introspect import next_rowid
from nova_pipeline.extract.snapshot import connect_readonly
from nova_pipeline.core.spec import Spec, TableSpec

PG_MAX_COLUMNS = 1600
NOCASE_COLLATION = "nova_nocase"
_INTEGER_MAX = {"smallint": 2**15 - 1, "integer": 2**31 - 1, "bigint": 2**63 - 1}
_CANONICAL_TYPES = {"timestamptz": "timestamp with time zone", "timestamp": "timestamp without time zone",
                    "time": "time without time zone"}


class DDLError(RuntimeError):
    """A table cannot be created or altered; one line naming the table(s). `actions` holds what did succeed."""

    def __init__(self, message: str, actions: list[str] | None = None):
        super().__init__(message)
        self.actions = actions or []


@dataclass
class ConstraintReport:
    """What add_constraints did: names added, already present, FKs left NOT VALID (orphan count), notes, failures."""

    added: list[str] = field(default_factory=list)
    existing: list[str] = field(default_factory=list)
    not_valid: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    untranslated: list[str] = field(default_factory=list)
    identity_restarts: dict[str, int] = field(default_factory=dict)


def column_type(table: TableSpec, source_column: str, nocase: str = "icu") -> str:
    """The PostgreSQL type of a column (`json_columns` make text columns jsonb; COLLATE NOCASE text is citext
    in the "citext" NOCASE mode)."""
    c = table.columns[source_column]
    if source_column in table.json_columns and c.type not in ("json", "jsonb"):
        return "jsonb"
    if c.collate == "nocase" and nocase == "citext" and c.type.split("(")[0] in ("text", "varchar", "char"):
        return "citext"
    return c.type


# Ways to keep COLLATE NOCASE, first that the server allows wins. citext first: it keeps LIKE case-insensitive
# as SQLite's, where LIKE and ILIKE on an ICU nondeterministic collation fail ("nondeterministic collations
# are not supported for LIKE", measured on PostgreSQL 15); see README, Data handling.
NOCASE_ORDER = ("citext", "icu")


def nocase_mode(conn: psycopg.Connection, schema: str) -> str:
    """How COLLATE NOCASE can be kept in `schema`: "citext" (the extension is installed), "icu" (the
    nova_nocase collation exists) or "lower" (neither: UNIQUE indexes on lower(col), comparisons case-sensitive)."""
    present = {
        "citext": "SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citext')",
        "icu": "SELECT EXISTS (SELECT 1 FROM pg_collation c JOIN pg_namespace n ON n.oid = c.collnamespace"
               " WHERE n.nspname = %(schema)s AND c.collname = %(collation)s)",
    }
    for mode in NOCASE_ORDER:
        if conn.execute(present[mode], {"schema": schema, "collation": NOCASE_COLLATION}).fetchone()[0]:
            return mode
    return "lower"


def ensure_nocase(conn: psycopg.Connection, schema: str) -> str:
    """Set up COLLATE NOCASE for `schema` the first way of NOCASE_ORDER the server allows: the citext extension
    (contrib, trusted: a database owner may install it), or an ICU nondeterministic collation (a server built
    with ICU); else nothing. Return the mode (see nocase_mode)."""
    setup = {
        "citext": sql.SQL("CREATE EXTENSION IF NOT EXISTS citext"),
        "icu": sql.SQL("CREATE COLLATION IF NOT EXISTS {} (provider = icu, locale = 'und-u-ks-level2',"
                       " deterministic = false)").format(sql.Identifier(schema, NOCASE_COLLATION)),
    }
    for mode in NOCASE_ORDER:
        try:
            with conn.transaction():
                conn.execute(setup[mode])
            return mode
        except psycopg.Error:  # not available ("ICU is not supported in this build"), or no privilege
            continue
    return "lower"


def _canonical(pg_type: str) -> str:
    """A spec type as format_type() prints it, to compare with an existing table."""
    t = _CANONICAL_TYPES.get(pg_type, pg_type)
    t = re.sub(r"^varchar\(", "character varying(", t)
    return re.sub(r"^char\(", "character(", t).replace(", ", ",")


def _postgres_tables(spec: Spec, tables: list[str] | None) -> list[tuple[str, TableSpec]]:
    items = spec.table_items("postgres")
    return items if tables is None else [(n, t) for n, t in items if n in tables]


def _check_table(name: str, table: TableSpec) -> None:
    if not table.columns:
        raise DDLError(f"table {name!r}: the spec lists no columns (run `nova-pipeline init` to fill them in)")
    if len(table.columns) > PG_MAX_COLUMNS:
        raise DDLError(f"table {name!r}: {len(table.columns)} columns, PostgreSQL allows at most {PG_MAX_COLUMNS}")


def _create_table_sql(spec: Spec, name: str, nocase: str = "icu", generated: bool = True) -> sql.Composed:
    """CREATE TABLE with identity, generated (`generated=False`: as plain columns) and NOCASE columns."""
    table = spec.tables[name]
    schema, _ = pg_table(spec, name)
    cols = []
    for src, tgt in target_columns(table):
        c = table.columns[src]
        parts = [sql.Identifier(tgt), sql.SQL(column_type(table, src, nocase))]
        if c.collate == "nocase" and nocase == "icu" and _is_text(column_type(table, src)):
            parts.append(sql.SQL("COLLATE {}").format(sql.Identifier(schema, NOCASE_COLLATION)))
        if c.identity:
            parts.append(sql.SQL("GENERATED BY DEFAULT AS IDENTITY"))
        if c.generated and generated:
            parts.append(sql.SQL("GENERATED ALWAYS AS ({}) STORED").format(sql.SQL(c.generated)))
        if not c.nullable:
            parts.append(sql.SQL("NOT NULL"))
        if c.default is not None and not (c.generated and generated) and not c.identity:
            parts.append(sql.SQL("DEFAULT {}").format(sql.SQL(c.default)))
        cols.append(sql.SQL(" ").join(parts))
    cols += [definition for _, definition in fts.vector_columns(spec, name)]  # computed by the load's COPY
    stmt = sql.SQL("CREATE TABLE {} ({})").format(sql.Identifier(*pg_table(spec, name)), sql.SQL(", ").join(cols))
    if table.partition:
        stmt += sql.SQL(" PARTITION BY RANGE ({})").format(sql.Identifier(target_column(table, table.partition.column)))
    return stmt


def _is_text(pg_type: str) -> bool:
    return pg_type.split("(")[0] in ("text", "varchar", "char")


def _existing_shape(conn: psycopg.Connection, schema: str, name: str) -> tuple[str, list[tuple], list[str]] | None:
    """(relkind, [(column, type, identity, generated, collation)], partition key columns) of an existing table, or None."""
    rows = conn.execute(
        "SELECT c.relkind, a.attname, format_type(a.atttypid, a.atttypmod), a.attidentity::text, a.attgenerated::text,"
        " CASE WHEN co.collname = %s THEN co.collname ELSE '' END FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped"
        " LEFT JOIN pg_collation co ON co.oid = a.attcollation"
        " WHERE n.nspname = %s AND c.relname = %s ORDER BY a.attnum", (NOCASE_COLLATION, schema, name)).fetchall()
    if not rows:
        return None
    keys = conn.execute(
        "SELECT a.attname FROM pg_partitioned_table p JOIN pg_attribute a"
        " ON a.attrelid = p.partrelid AND a.attnum = ANY(p.partattrs)"
        " WHERE p.partrelid = %s::regclass", (sql.Identifier(schema, name).as_string(conn),)).fetchall()
    return rows[0][0], [tuple(r[1:]) for r in rows if r[1] is not None], [k[0] for k in keys]


def _wanted_shape(spec: Spec, name: str, nocase: str = "icu", generated: bool = True) -> tuple[str, list[tuple], list[str]]:
    table = spec.tables[name]
    cols = []
    for src, tgt in target_columns(table):
        c, pg_type = table.columns[src], column_type(table, src, nocase)
        collation = NOCASE_COLLATION if c.collate == "nocase" and nocase == "icu" and _is_text(pg_type) else ""
        cols.append((tgt, _canonical(pg_type), "d" if c.identity else "", "s" if c.generated and generated else "", collation))
    cols += [(column, "tsvector", "", "s", "") for column, _ in fts.vector_columns(spec, name)]
    if table.partition:
        return "p", cols, [target_column(table, table.partition.column)]
    return "r", cols, []


def create_tables(conn: psycopg.Connection, spec: Spec, tables: list[str] | None = None) -> list[str]:
    """Create the schemas and bare tables of the PostgreSQL targets; return what was done, one line per action.

    An existing table of the same shape is kept (data and all); one whose
    columns, types or partitioning differ is dropped (CASCADE) and re-created.
    Each table is its own transaction: a table that cannot be created does not
    stop the others, and a DDLError naming all such tables is raised at the end.
    """
    actions: list[str] = []
    errors: list[str] = []
    modes: dict[str, str] = {}
    for name, table in _postgres_tables(spec, tables):
        schema, target = pg_table(spec, name)
        label = f"{schema}.{target}"
        try:
            _check_table(name, table)
            with conn.transaction():
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
                nocase = "icu"
                if any(c.collate for c in table.columns.values()):
                    if schema not in modes:
                        modes[schema] = ensure_nocase(conn, schema)
                        actions.append(f"COLLATE NOCASE in {schema}: {_NOCASE_MODES[modes[schema]]}")
                    nocase = modes[schema]
                existing = _existing_shape(conn, schema, target)
                wanted = _wanted_shape(spec, name, nocase)
                if existing in (wanted, _wanted_shape(spec, name, nocase, generated=False)):
                    actions.append(f"kept {label} (same columns and types)")
                    continue
                if existing is not None:
                    conn.execute(sql.SQL("DROP TABLE {} CASCADE").format(sql.Identifier(schema, target)))
                fallback = _create_table(conn, spec, name, nocase)
                verb = "re-created" if existing else "created"
                why = " (columns, types or partitioning changed; old table dropped)" if existing else ""
                actions.append(f"{verb} {label}{why}{fallback}")
        except DDLError as e:
            errors.append(str(e))
        except psycopg.Error as e:
            errors.append(f"table {name!r}: {_first_line(e)}")
    if errors:
        raise DDLError("; ".join(errors), actions)
    return actions


_NOCASE_MODES = {
    "citext": "citext columns (equality, ordering, UNIQUE, LIKE ignore case)",
    "icu": f"ICU nondeterministic collation {NOCASE_COLLATION} (equality, ordering, UNIQUE ignore case; "
           "LIKE on these columns fails: no citext on this server)",
    "lower": "PARTIAL: the server has neither ICU nor citext; UNIQUE indexes use lower(col), "
             "comparisons stay case-sensitive",
}


def _create_table(conn: psycopg.Connection, spec: Spec, name: str, nocase: str) -> str:
    """Create one table; generated columns whose expression PostgreSQL refuses become plain columns (said in
    the returned text), the load then copies their computed values."""
    try:
        with conn.transaction():
            conn.execute(_create_table_sql(spec, name, nocase))
        return ""
    except psycopg.Error as e:
        if not any(c.generated for c in spec.tables[name].columns.values()):
            raise
        reason = _first_line(e)
    conn.execute(_create_table_sql(spec, name, nocase, generated=False))
    return f"; generated columns as plain columns holding the computed values ({reason})"


def _first_line(e: Exception) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def _partition_bounds(table: TableSpec, start: datetime, end: datetime) -> list[tuple[str, object, object]]:
    """(suffix, lower, upper) of the physical partitions covering [start, end)."""
    col_type = column_type(table, table.partition.column)
    daily = table.partition.physical == "day"

    def typed(d: date) -> object:
        if col_type == "date":
            return d
        naive = datetime(d.year, d.month, d.day)
        return naive.replace(tzinfo=timezone.utc) if col_type == "timestamptz" else naive

    def as_utc(t: datetime) -> datetime:
        return t.astimezone(timezone.utc).replace(tzinfo=None) if t.tzinfo else t

    lo, hi = as_utc(start), as_utc(end)
    cur = date(lo.year, lo.month, lo.day if daily else 1)
    out = []
    while datetime(cur.year, cur.month, cur.day) < hi:
        nxt = cur + timedelta(days=1) if daily else date(cur.year + cur.month // 12, cur.month % 12 + 1, 1)
        suffix = f"p{cur:%Y_%m_%d}" if daily else f"p{cur:%Y_%m}"
        out.append((suffix, typed(cur), typed(nxt)))
        cur = nxt
    return out


def ensure_partitions(conn: psycopg.Connection, spec: Spec, table: str, start: datetime, end: datetime) -> list[str]:
    """Create the missing monthly (or daily) partitions of a partitioned table covering [start, end).

    Children are named `<table>_pYYYY_MM` (`_pYYYY_MM_DD` for daily); indexes
    and the primary key of the parent reach them automatically (PostgreSQL
    attaches partitioned indexes to new partitions).
    """
    ts = spec.tables[table]
    if ts.partition is None:
        raise DDLError(f"table {table!r}: not partitioned (no `partition` in the spec)")
    schema, parent = pg_table(spec, table)
    created = []
    with conn.transaction():
        for suffix, lower, upper in _partition_bounds(ts, start, end):
            child = fit_identifier(f"{parent}_{suffix}")
            exists = conn.execute("SELECT to_regclass(%s)", (sql.Identifier(schema, child).as_string(conn),)).fetchone()[0]
            if exists:
                continue
            try:
                with conn.transaction():
                    conn.execute(sql.SQL("CREATE TABLE {} PARTITION OF {} FOR VALUES FROM ({}) TO ({})").format(
                        sql.Identifier(schema, child), sql.Identifier(schema, parent), sql.Literal(lower), sql.Literal(upper)))
            except psycopg.Error as e:
                raise DDLError(f"table {table!r}: partition {child}: {_first_line(e)}") from None
            created.append(f"created partition {schema}.{child} [{lower}, {upper})")
    return created


@dataclass(frozen=True)
class _Constraint:
    kind: str  # "pk", "index", "check" or "fk"
    schema: str
    table: str
    name: str
    stmt: sql.Composed
    fk: tuple[sql.Composed, sql.Composed] | None = None  # (NOT VALID form, count of violating rows) of a check or FK


def _with_partition_column(cols: list[str], part: str | None) -> list[str]:
    return cols if part is None or part in [c.lstrip("-") for c in cols] else [*cols, part]


def _index_terms(table: TableSpec, idx, nocase: str) -> tuple[list[sql.Composable], list[str]]:
    """(SQL terms, target columns used for the derived name) of an index; in "lower" NOCASE mode the NOCASE
    columns of a UNIQUE index are indexed as lower(col), so duplicates differing in case are still rejected."""
    if idx.expressions:
        return [sql.SQL(e) for e in idx.expressions], ["expr"]
    terms, names = [], []
    for c in idx.columns:
        src = c.removeprefix("-")
        col = sql.Identifier(target_column(table, src))
        if idx.unique and nocase == "lower" and table.columns[src].collate == "nocase":
            col = sql.SQL("lower({})").format(col)
        terms.append(col + sql.SQL(" DESC") if c.startswith("-") else col)
        names.append(target_column(table, src))
    return terms, names


def check_name(spec: Spec, name: str, position: int) -> str:
    """The constraint name of a table's `position`-th CHECK (its own name when the spec gives one)."""
    check = spec.tables[name].checks[position]
    return fit_identifier(check.name or f"{pg_table(spec, name)[1]}_check{position + 1}")


def _constraints(spec: Spec, name: str, notes: list[str], nocase: str = "icu") -> list[_Constraint]:
    """The PK, indexes, CHECKs and FKs of one table as statements, in that order."""
    table = spec.tables[name]
    schema, target = pg_table(spec, name)
    ident = sql.Identifier(schema, target)
    part = target_column(table, table.partition.column) if table.partition else None
    out = []

    def tgt(src: str) -> str:
        return ("-" if src.startswith("-") else "") + target_column(table, src.removeprefix("-"))

    if table.primary_key:
        cols = [target_column(table, c) for c in table.primary_key]
        full = _with_partition_column(cols, part)
        if full != cols:
            notes.append(f"{schema}.{target}: primary key extended with partition column {part!r} (PostgreSQL requires it)")
        cname = fit_identifier(f"{target}_pkey")
        out.append(_Constraint("pk", schema, target, cname, sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})").format(
            ident, sql.Identifier(cname), sql.SQL(", ").join(map(sql.Identifier, full)))))
    for idx in table.indexes:
        terms, cols = _index_terms(table, idx, nocase)
        if idx.unique and part is not None and part not in [tgt(c).lstrip("-") for c in idx.columns]:
            notes.append(f"{schema}.{target}: unique index on {cols} extended with partition column {part!r}")
            terms, cols = [*terms, sql.Identifier(part)], [*cols, part]
        iname = idx.name or fit_identifier(f"{target}_{'_'.join(cols)}_{'key' if idx.unique else 'idx'}")
        stmt = sql.SQL("CREATE {}INDEX {} ON {} ({})").format(
            sql.SQL("UNIQUE " if idx.unique else ""), sql.Identifier(iname), ident, sql.SQL(", ").join(terms))
        if idx.where:
            stmt += sql.SQL(" WHERE {}").format(sql.SQL(idx.where))
        out.append(_Constraint("index", schema, target, iname, stmt))
    for i, check in enumerate(table.checks):
        if check.sql is None:
            notes.append(f"{schema}.{target}: CHECK ({check.sqlite}) not translated: {check.reason or 'no PostgreSQL SQL given'}")
            continue
        cname = check_name(spec, name, i)
        body = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({})").format(ident, sql.Identifier(cname), sql.SQL(check.sql))
        violations = sql.SQL("SELECT count(*) FROM {} WHERE NOT ({})").format(ident, sql.SQL(check.sql))
        out.append(_Constraint("check", schema, target, cname, body, (body + sql.SQL(" NOT VALID"), violations)))
    for fk in table.foreign_keys:
        ref = spec.tables[fk.references]
        if ref.target != "postgres":
            notes.append(f"{schema}.{target}: foreign key to {fk.references!r} skipped (that table goes to {ref.target})")
            continue
        cols = [target_column(table, c) for c in fk.columns]
        rcols = [target_column(ref, c) for c in fk.referenced_columns]
        rident = sql.Identifier(*pg_table(spec, fk.references))
        fname = fit_identifier(f"{target}_{'_'.join(cols)}_fkey")
        body = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {}").format(
            ident, sql.Identifier(fname), sql.SQL(", ").join(map(sql.Identifier, cols)), rident,
            sql.SQL(", ").join(map(sql.Identifier, rcols)), sql.SQL(fk.on_delete.upper()))
        orphans = sql.SQL("SELECT count(*) FROM {} c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} p WHERE {})").format(
            ident, sql.SQL(" AND ").join(sql.SQL("c.{} IS NOT NULL").format(sql.Identifier(c)) for c in cols), rident,
            sql.SQL(" AND ").join(sql.SQL("p.{} = c.{}").format(sql.Identifier(r), sql.Identifier(c)) for c, r in zip(cols, rcols)))
        out.append(_Constraint("fk", schema, target, fname, body, (body + sql.SQL(" NOT VALID"), orphans)))
    return out


def plan_ddl(spec: Spec) -> list[str]:
    """The SQL create_tables and add_constraints would run on an empty target with citext (dry run; no connection)."""
    stmts, cons, notes = [], [], []
    nocase_schemas = dict.fromkeys(pg_table(spec, n)[0] for n, t in spec.table_items("postgres")
                                   if any(c.collate for c in t.columns.values()))
    for schema in dict.fromkeys(pg_table(spec, n)[0] for n, _ in spec.table_items("postgres")):
        stmts.append(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)).as_string(None) + ";")
    if nocase_schemas:
        stmts.append("CREATE EXTENSION IF NOT EXISTS citext;")
        notes.append(f"COLLATE NOCASE in {', '.join(nocase_schemas)}: citext columns; on a server without citext the "
                     f"ICU collation {NOCASE_COLLATION}, else UNIQUE indexes on lower(col) and case-sensitive "
                     "comparisons (partial)")
    for name, table in spec.table_items("postgres"):
        try:
            _check_table(name, table)
        except DDLError as e:
            stmts.append(f"-- skipped: {e}")
            continue
        stmts.append(_create_table_sql(spec, name, "citext").as_string(None) + ";")
        cons += _constraints(spec, name, notes, "citext")
    stmts += [c.stmt.as_string(None) + ";" for c in sorted(cons, key=lambda c: _ORDER[c.kind])]
    return stmts + [f"-- note: {n}" for n in notes]


_ORDER = {"pk": 0, "index": 1, "check": 2, "fk": 3}


def _exists(conn: psycopg.Connection, c: _Constraint) -> bool:
    if c.kind == "index":
        query = "SELECT to_regclass(%s) IS NOT NULL"
        return conn.execute(query, (sql.Identifier(c.schema, c.name).as_string(conn),)).fetchone()[0]
    return conn.execute("SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conrelid = %s::regclass AND conname = %s)",
                        (sql.Identifier(c.schema, c.table).as_string(conn), c.name)).fetchone()[0]


def add_foreign_key(conn: psycopg.Connection, stmt: sql.Composable, not_valid_stmt: sql.Composable,
                    orphan_query: sql.Composable) -> int:
    """Add an FK (or a CHECK) validated; when rows violate it, add it NOT VALID instead and return the count of
    violating rows (else 0).

    Rows are never dropped: the validation phase reports them. A partitioned table takes no NOT VALID
    constraint, so there it stays absent while violating rows remain.
    """
    try:
        with conn.transaction():
            conn.execute(stmt)
        return 0
    except (psycopg.errors.ForeignKeyViolation, psycopg.errors.CheckViolation):
        orphans = conn.execute(orphan_query).fetchone()[0]
    try:
        with conn.transaction():
            conn.execute(not_valid_stmt)
    except (psycopg.errors.WrongObjectType, psycopg.errors.FeatureNotSupported, psycopg.errors.InvalidTableDefinition):
        pass
    return orphans


def add_constraints(conn: psycopg.Connection, spec: Spec, tables: list[str] | None = None, *,
                    source: Path | None = None) -> ConstraintReport:
    """Add primary keys, then indexes (unique, partial, expression), then CHECKs, then foreign keys; skip those
    already present; with `source` (the run's SQLite snapshot) restart identity columns where SQLite would go on.

    All after the data, so FK order, self-references and cycles do not matter.
    A statement that fails (e.g. duplicate keys) is recorded in `failed` and
    the others go on. CHECKs and FKs the rows already break are added NOT VALID.
    """
    report = ConstraintReport(untranslated=untranslated_checks(spec, tables))
    cons = []
    for name, table in _postgres_tables(spec, tables):
        if table.columns and len(table.columns) <= PG_MAX_COLUMNS:
            nocase = nocase_mode(conn, pg_table(spec, name)[0]) if any(c.collate for c in table.columns.values()) else "icu"
            cons += _constraints(spec, name, report.notes, nocase)
            if nocase == "lower":
                report.notes.append(f"{'.'.join(pg_table(spec, name))}: COLLATE NOCASE partial (no ICU, no citext): "
                                    "UNIQUE on lower(col), comparisons case-sensitive")
    for c in sorted(cons, key=lambda c: _ORDER[c.kind]):
        label = f"{c.schema}.{c.table}.{c.name}"
        try:
            with conn.transaction():
                if _exists(conn, c):
                    report.existing.append(label)
                    continue
                if c.fk is not None:
                    orphans = add_foreign_key(conn, c.stmt, *c.fk)
                    if orphans:
                        report.not_valid[label] = orphans
                else:
                    conn.execute(c.stmt)
                report.added.append(label)
        except psycopg.Error as e:
            report.failed[label] = _first_line(e)
    if source is not None and Path(source).exists():
        report.identity_restarts = restart_identities(conn, spec, source, tables)
    elif any(identity_columns(spec, n) for n, _ in _postgres_tables(spec, tables)):
        report.notes.append("identity columns not restarted: no SQLite snapshot to read the next keys from")
    return report


def untranslated_checks(spec: Spec, tables: list[str] | None = None) -> list[str]:
    """One line per CHECK of the PostgreSQL tables that has no PostgreSQL SQL: table, SQLite text, reason."""
    return [f"{'.'.join(pg_table(spec, name))}: CHECK ({c.sqlite}): {c.reason or 'no PostgreSQL SQL given'}"
            for name, table in _postgres_tables(spec, tables) for c in table.checks if c.sql is None]


def identity_columns(spec: Spec, name: str) -> list[str]:
    """Source names of a table's identity columns."""
    return [c for c, col in spec.tables[name].columns.items() if col.identity]


def next_keys(spec: Spec, source: Path, tables: list[str] | None = None) -> dict[tuple[str, str], int]:
    """(table, column) → the key SQLite would hand out next, read from `source`, for every identity column."""
    conn = connect_readonly(source)
    try:
        return {(n, c): next_rowid(conn, n, c) for n, _ in _postgres_tables(spec, tables) for c in identity_columns(spec, n)}
    finally:
        conn.close()


def restart_identities(conn: psycopg.Connection, spec: Spec, source: Path, tables: list[str] | None = None) -> dict[str, int]:
    """Restart each identity column at the key SQLite would hand out next (see next_keys); return label → value.
    A value beyond the column's type (SQLite then picks unused keys at random) leaves the identity as it is;
    a table that could not be created is passed over."""
    out = {}
    for (name, column), value in next_keys(spec, source, tables).items():
        table = sql.Identifier(*pg_table(spec, name))
        if value > _INTEGER_MAX.get(spec.tables[name].columns[column].type, 0) or not conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL", (table.as_string(conn),)).fetchone()[0]:
            continue
        target = target_column(spec.tables[name], column)
        with conn.transaction():
            conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN {} RESTART WITH {}").format(
                table, sql.Identifier(target), sql.Literal(value)))
        out[f"{'.'.join(pg_table(spec, name))}.{target}"] = value
    return out


def fk_order(spec: Spec) -> list[str]:
    """PostgreSQL tables, referenced tables first; self-references ignored, cycle members in spec order."""
    names = [n for n, _ in spec.table_items("postgres")]
    deps = {n: {fk.references for fk in spec.tables[n].foreign_keys if fk.references in names and fk.references != n}
            for n in names}
    out: list[str] = []
    while len(out) < len(names):
        remaining = [n for n in names if n not in out]
        ready = [n for n in remaining if deps[n] <= set(out)]
        # A cycle: take its first member in spec order and go on.
        out.append(ready[0] if ready else remaining[0])
    return out
