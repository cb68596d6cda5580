"""SQLite SQL → PostgreSQL SQL through sqlglot, with identifiers resolved as SQLite resolves them.

SQLite matches identifiers case-insensitively; the target keeps the source's
names and quotes every identifier, so each identifier in a translated text is
replaced by the target name it resolves to (`names`: lower-case source name →
target name) and quoted. Anything sqlglot cannot parse or render raises
Untranslatable with a one-line reason, so callers report it with its SQL.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError


class Untranslatable(ValueError):
    """A SQLite text has no PostgreSQL translation; the message is one line saying why."""


def parse(sql: str, *, into: type[exp.Expression] | None = None) -> exp.Expression:
    """The sqlglot tree of a SQLite text (a statement, or an expression with `into`)."""
    try:
        tree = sqlglot.parse_one(sql, read="sqlite", into=into) if into else sqlglot.parse_one(sql, read="sqlite")
    except SqlglotError as e:
        raise Untranslatable(f"cannot parse: {str(e).splitlines()[0]}") from None
    if tree is None:
        raise Untranslatable("empty SQL")
    return tree


def resolve_identifiers(tree: exp.Expression, names: Mapping[str, str] | None) -> exp.Expression:
    """Replace each identifier by its target name (case-insensitive lookup) and quote it."""
    for ident in tree.find_all(exp.Identifier):
        if names:
            ident.set("this", names.get(ident.name.lower(), ident.name))
        ident.set("quoted", True)
    return tree


def render(tree: exp.Expression) -> str:
    """PostgreSQL text of a tree; Untranslatable when sqlglot knows no PostgreSQL form."""
    try:
        return tree.sql(dialect="postgres", unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as e:
        raise Untranslatable(f"no PostgreSQL form: {str(e).splitlines()[0]}") from None


def to_postgres(sql: str, names: Mapping[str, str] | None = None) -> str:
    """Translate one SQLite statement or expression to PostgreSQL, identifiers resolved and quoted."""
    return render(resolve_identifiers(parse(sql), names))


# Nodes sqlglot passes through unchanged although PostgreSQL has no such function or operator.
_NO_POSTGRES_FORM = {
    exp.Typeof: "typeof() (SQLite storage classes) has no PostgreSQL equivalent",
    exp.Glob: "GLOB has no PostgreSQL translation",
    exp.Hex: "hex() has no PostgreSQL function of that name",
}


def _refuse_sqlite_only(tree: exp.Expression) -> None:
    """Untranslatable when the tree uses a SQLite-only function, operator or collation."""
    for node in tree.walk():
        if isinstance(node, exp.Anonymous):
            raise Untranslatable(f"function {node.name.lower()}() has no known PostgreSQL translation")
        if isinstance(node, exp.Command):
            raise Untranslatable("cannot parse as an expression")
        if isinstance(node, exp.Collate):
            raise Untranslatable(f"COLLATE {node.expression.name} inside an expression has no PostgreSQL translation")
        for kind, reason in _NO_POSTGRES_FORM.items():
            if isinstance(node, kind):
                raise Untranslatable(reason)


_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.In, exp.Between)
_NUMERIC_TYPES = ("smallint", "integer", "bigint", "real", "double precision", "numeric")


def _refuse_numbers_against_other_types(tree: exp.Expression, types: Mapping[str, str]) -> None:
    """Untranslatable when a column migrated to a non-numeric type (timestamptz, boolean, uuid, ...) is compared
    with a number: SQLite compared what it stored, PostgreSQL has no such operator."""
    for node in tree.find_all(*_COMPARISONS):
        operands = [node.this, *(node.expressions if isinstance(node, exp.In) else
                                 [node.args.get("low"), node.args.get("high")] if isinstance(node, exp.Between) else
                                 [node.expression])]
        columns = [o for o in operands if isinstance(o, exp.Column) and o.name.lower() in types]
        numbers = [o for o in operands if isinstance(o, exp.Literal) and not o.is_string]
        for column in columns:
            pg_type = types[column.name.lower()]
            if numbers and pg_type.split("(")[0] not in _NUMERIC_TYPES:
                raise Untranslatable(f"compares {column.name} (migrated to {pg_type}) with a number")


_EQUALITIES = (exp.EQ, exp.NEQ, exp.NullSafeEQ, exp.NullSafeNEQ)


def boolean_literals(node: exp.Expression, types: Mapping[str, str]) -> None:
    """In place: 0/1 compared with (or listed IN for) a column migrated to boolean become FALSE/TRUE.

    `types` maps lower-case column names to their PostgreSQL types."""
    def is_bool_column(n: exp.Expression) -> bool:
        n = n.unnest()
        return isinstance(n, exp.Column) and types.get(n.name.lower()) == "boolean"

    def as_bool(n: exp.Expression) -> exp.Expression:
        lit = n.unnest()
        if isinstance(lit, exp.Literal) and not lit.is_string and lit.this in ("0", "1"):
            return exp.Boolean(this=lit.this == "1")
        return n

    if isinstance(node, exp.In) and is_bool_column(node.this):
        node.set("expressions", [as_bool(e) for e in node.expressions])
    elif isinstance(node, _EQUALITIES):
        if is_bool_column(node.this):
            node.set("expression", as_bool(node.expression))
        elif is_bool_column(node.expression):
            node.set("this", as_bool(node.this))


def translate_expression(sql: str, names: Mapping[str, str] | None = None, types: Mapping[str, str] | None = None) -> str:
    """Translate one SQLite expression (a CHECK, a generated column, an index term or predicate) to PostgreSQL.

    `names` maps lower-case source column names to target names; `types` maps them to their PostgreSQL types:
    0/1 compared with a boolean column become FALSE/TRUE, other numbers compared with a column that is no
    longer numeric (boolean, timestamptz, uuid, ...) make the expression untranslatable.
    """
    select = parse(f"SELECT {sql}")
    if not isinstance(select, exp.Select) or len(select.expressions) != 1 or select.args.get("from"):
        raise Untranslatable("not a single expression")
    tree = select.expressions[0]
    _refuse_sqlite_only(tree)
    types = {k.lower(): v for k, v in (types or {}).items()}
    for node in list(tree.find_all(*_EQUALITIES, exp.In)):
        boolean_literals(node, types)
    _refuse_numbers_against_other_types(tree, types)
    return render(resolve_identifiers(tree, names))


@dataclass(frozen=True)
class TableDefinition:
    """What a CREATE TABLE says that SQLite's pragmas do not: CHECKs, collations, generation expressions."""

    checks: list[tuple[str | None, str]]  # (constraint name or None, SQLite expression text)
    collations: dict[str, str]  # lower-case column name → collation (upper case) as declared
    generated: dict[str, str]  # lower-case column name → SQLite generation expression text
    autoincrement: bool


def table_definition(create_sql: str) -> TableDefinition:
    """Parse a table's CREATE TABLE text; Untranslatable when sqlglot cannot read it."""
    tree = parse(create_sql)
    schema = tree.this if isinstance(tree, exp.Create) else None
    if not isinstance(schema, exp.Schema):
        raise Untranslatable("not a CREATE TABLE with a column list")
    checks: list[tuple[str | None, str]] = []
    collations: dict[str, str] = {}
    generated: dict[str, str] = {}
    autoincrement = False
    for item in schema.expressions:
        if isinstance(item, exp.ColumnDef):
            column = item.name.lower()
            for constraint in item.args.get("constraints") or []:
                kind = constraint.args.get("kind")
                if isinstance(kind, exp.CheckColumnConstraint):
                    checks.append((constraint.name or None, kind.this.sql(dialect="sqlite")))
                elif isinstance(kind, exp.ComputedColumnConstraint):
                    generated[column] = kind.this.unnest().sql(dialect="sqlite")
                elif isinstance(kind, exp.AutoIncrementColumnConstraint):
                    autoincrement = True
                elif isinstance(kind, exp.CollateColumnConstraint):
                    collations[column] = kind.this.name.upper()
                elif isinstance(kind, exp.DefaultColumnConstraint) and isinstance(kind.this, exp.Collate):
                    collations[column] = kind.this.expression.name.upper()  # sqlglot reads `DEFAULT x COLLATE c` so
        elif isinstance(item, exp.Constraint):
            for kind in item.expressions:
                if isinstance(kind, exp.CheckColumnConstraint):
                    checks.append((item.name or None, kind.this.sql(dialect="sqlite")))
        elif isinstance(item, exp.CheckColumnConstraint):
            checks.append((None, item.this.sql(dialect="sqlite")))
    return TableDefinition(checks, collations, generated, autoincrement)


def index_terms(create_sql: str) -> tuple[list[tuple[str, bool]], str | None]:
    """((SQLite text, descending) of each term, WHERE predicate text or None) of a CREATE INDEX.

    A term `x COLLATE NOCASE` becomes `lower(x)` (uniqueness and lookups stay case-insensitive),
    `x COLLATE BINARY` becomes `x`.
    """
    tree = parse(create_sql)
    index = tree.this if isinstance(tree, exp.Create) else None
    params = index.args.get("params") if isinstance(index, exp.Index) else None
    if params is None or not params.args.get("columns"):
        raise Untranslatable("not a CREATE INDEX with a column list")
    terms = []
    for term in params.args["columns"]:
        node, desc = (term.this, bool(term.args.get("desc"))) if isinstance(term, exp.Ordered) else (term, False)
        if isinstance(node, exp.Collate) and node.expression.name.upper() in ("NOCASE", "BINARY"):
            node = exp.Lower(this=node.this) if node.expression.name.upper() == "NOCASE" else node.this
        terms.append((node.sql(dialect="sqlite"), desc))
    where = params.args.get("where")
    return terms, where.this.sql(dialect="sqlite") if where is not None else None
