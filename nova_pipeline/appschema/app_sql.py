"""Application SQL (view bodies, trigger statements, parity queries) from SQLite's dialect to PostgreSQL.

sqlglot does the dialect work (`||`, ifnull, group_concat, iif, LIMIT, quoting);
this module adds what sqlglot leaves in SQLite's form or what depends on the
target's column types: 0/1 compared with boolean columns, sums of booleans,
string_agg over non-text values, LIKE's case-insensitivity, CAST to INTEGER/REAL
widths, round() of doubles, SQLite's date/time functions with their modifiers
('now', '+N days', 'start of month', ...), INSERT OR IGNORE/REPLACE, and
NEW./OLD. references in trigger bodies. Identifiers resolve case-insensitively
to the target's names and are quoted; relations are qualified with their
target schema. What has no translation raises sql_translate.Untranslatable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from sqlglot import exp

from nova_pipeline.core import identifiers
from nova_pipeline.core.spec import Spec
from nova_pipeline.core.sql_translate import Untranslatable, boolean_literals, parse, render, resolve_identifiers

_TIMESTAMP_TYPES = {"timestamptz", "timestamp", "date"}
_TEXT_TYPES = ("text", "varchar", "char")
_INTEGER_TYPES = {"bigint", "integer", "smallint"}
_MODIFIER = re.compile(r"^\s*([+-]?\d+(?:\.\d+)?)\s+(year|month|day|hour|minute|second)s?\s*$", re.I)
_START_OF = re.compile(r"^\s*start\s+of\s+(year|month|day)\s*$", re.I)


@dataclass
class Target:
    """What a translation needs to know of the target: relations, their names, schemas and column types."""

    relations: dict[str, tuple[str, str]] = field(default_factory=dict)  # lower source name → (schema, target name)
    names: dict[str, str] = field(default_factory=dict)  # lower source identifier → target identifier
    columns: dict[str, dict[str, str]] = field(default_factory=dict)  # lower target relation → lower column → type
    primary_keys: dict[str, list[str]] = field(default_factory=dict)  # lower target relation → target PK columns
    full_text: dict[str, tuple[str, str]] = field(default_factory=dict)  # lower target relation → (tsvector, config)

    def add_relation(self, source: str, schema: str, target: str, columns: dict[str, str] | None = None,
                     primary_key: list[str] | None = None) -> None:
        """Register a relation (table or view) and its target column types (target column name → type)."""
        self.relations[source.lower()] = (schema, target)
        self.names.setdefault(source.lower(), target)
        if columns is not None:
            self.columns[target.lower()] = {c.lower(): t for c, t in columns.items()}
        if primary_key is not None:
            self.primary_keys[target.lower()] = primary_key


def target_of(spec: Spec) -> Target:
    """The spec's PostgreSQL tables as a translation Target."""
    out = Target()
    for name, t in spec.table_items("postgres"):
        schema, table = identifiers.pg_table(spec, name)
        cols = identifiers.target_columns(t)
        for src, tgt in cols:
            out.names.setdefault(src.lower(), tgt)
        types = {tgt: " ".join(t.columns[src].type.split("(")[:1]) for src, tgt in cols}
        types.update({identifiers.target_column(t, c): "jsonb" for c in t.json_columns if c in t.columns})
        out.add_relation(name, schema, table, types, [identifiers.target_column(t, c) for c in t.primary_key])
        for f in t.fts:  # MATCH on the FTS table (or the view that stands for an external-content one)
            relation = identifiers.fit_identifier(f.view) if f.view else table
            if f.view:
                out.add_relation(f.view, schema, relation)
            out.full_text[relation.lower()] = (f.column, f.config)
    return out


def translate_query(sql: str, target: Target) -> str:
    """One SQLite statement (SELECT, INSERT, UPDATE, DELETE) as PostgreSQL."""
    return render(translate_tree(parse(sql), target))


def translate_tree(tree: exp.Expression, target: Target, row_relation: str | None = None) -> exp.Expression:
    """The tree rewritten for PostgreSQL; `row_relation` (lower target name) types NEW./OLD. columns."""
    if isinstance(tree, exp.Command):
        raise Untranslatable(f"sqlglot does not understand this statement: {tree.sql()[:80]}")
    relations = _relations(tree, target)
    resolve_identifiers(tree, target.names)
    for table, (schema, name) in relations:  # after resolving, so a target name is not resolved again
        table.set("db", exp.to_identifier(schema, quoted=True))
        table.set("this", exp.to_identifier(name, quoted=True))
    types = _column_types(tree, target, row_relation)
    _rowid_columns(tree, target, row_relation)
    for node in reversed(list(tree.walk(bfs=False))):  # children first: a parent rewritten later copies them done
        _rewrite(node, types, target)
    for col in tree.find_all(exp.Column):  # NEW / OLD are PL/pgSQL records: lower case, not quoted
        if col.table.lower() in ("new", "old"):
            col.set("table", exp.to_identifier(col.table.lower()))
    return tree


_ROWID = ("rowid", "_rowid_", "oid")


def _rowid_columns(tree: exp.Expression, target: Target, row_relation: str | None) -> None:
    """`rowid` (`NEW.rowid`, `t.rowid`) → the table's INTEGER PRIMARY KEY, the column SQLite's rowid is."""
    tables = {t.alias_or_name.lower(): t.name.lower() for t in tree.find_all(exp.Table)}
    if row_relation:
        tables.update(new=row_relation, old=row_relation)
    only = next(iter(set(tables.values()))) if len({t.name.lower() for t in tree.find_all(exp.Table)}) == 1 else None
    for col in tree.find_all(exp.Column):
        if col.name.lower() not in _ROWID:
            continue
        relation = tables.get(col.table.lower()) if col.table else only
        columns = target.columns.get(relation or "", {})
        key = target.primary_keys.get(relation or "", [])
        if col.name.lower() in columns:
            continue  # a real column of that name
        if len(key) != 1 or columns.get(key[0].lower()) not in _INTEGER_TYPES:
            raise Untranslatable(f"{col.name} of {relation or 'this table'}: PostgreSQL has no rowid and the table "
                                 "has no INTEGER PRIMARY KEY to stand for it")
        col.set("this", exp.to_identifier(key[0], quoted=True))


def _relations(tree: exp.Expression, target: Target) -> list[tuple[exp.Table, tuple[str, str]]]:
    """The unqualified relation references of the tree that name a target relation, with (schema, target name)."""
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    return [(t, found) for t in tree.find_all(exp.Table)
            if not t.db and t.name.lower() not in ctes and (found := target.relations.get(t.name.lower()))]


def _column_types(tree: exp.Expression, target: Target, row_relation: str | None) -> dict[str, str]:
    """Lower column name → type, over the relations the statement reads (a name two of them type differently is left out)."""
    relations = {t.name.lower() for t in tree.find_all(exp.Table)} | ({row_relation} if row_relation else set())
    out: dict[str, str] = {}
    ambiguous: set[str] = set()
    for rel in relations:
        for col, typ in target.columns.get(rel, {}).items():
            if out.setdefault(col, typ) != typ:
                ambiguous.add(col)
    return {c: t for c, t in out.items() if c not in ambiguous}


def _type_of(node: exp.Expression, types: dict[str, str]) -> str | None:
    node = node.unnest()
    return types.get(node.name.lower()) if isinstance(node, exp.Column) else None


def _rewrite(node: exp.Expression, types: dict[str, str], target: Target) -> None:
    if isinstance(node, (exp.EQ, exp.NEQ, exp.NullSafeEQ, exp.NullSafeNEQ, exp.In)):
        boolean_literals(node, types)
    elif isinstance(node, (exp.Sum, exp.Avg)) and _type_of(node.this, types) == "boolean":
        node.set("this", exp.cast(node.this.copy(), "int"))
    elif isinstance(node, exp.Sum) and _type_of(node.this, types) in _INTEGER_TYPES:
        node.replace(exp.cast(node.copy(), "bigint"))  # SQLite sums integers to an integer
    elif isinstance(node, exp.Avg):
        node.replace(exp.cast(node.copy(), "double precision"))
    elif isinstance(node, exp.Coalesce):
        _coalesce_text(node, types)
    elif isinstance(node, exp.GroupConcat):
        _text_argument(node)
    elif isinstance(node, exp.DPipe):
        for key in ("this", "expression"):
            part = node.args[key]
            kind = _type_of(part, types)
            if kind == "boolean":
                node.set(key, exp.cast(exp.cast(part.copy(), "int"), "text"))
            elif kind and not kind.startswith(_TEXT_TYPES):
                node.set(key, exp.cast(part.copy(), "text"))
    elif isinstance(node, exp.Like) and not isinstance(node.parent, exp.Escape):
        node.replace(exp.ILike(this=node.this, expression=node.expression))  # SQLite's LIKE ignores ASCII case
    elif isinstance(node, exp.Cast):
        _cast_width(node)
    elif isinstance(node, exp.Round) and node.args.get("decimals") is not None:
        node.set("this", exp.cast(node.this.copy(), "numeric"))
    elif isinstance(node, exp.Anonymous):
        _function(node, types)
    elif isinstance(node, exp.Date):
        node.replace(exp.cast(_timestamp(node.this, types), "date"))
    elif isinstance(node, exp.TsOrDsToTimestamp):
        node.replace(_timestamp(node.this, types))
    elif isinstance(node, exp.TimeToStr) and node.args.get("format") is not None and "%s" in node.text("format"):
        raise Untranslatable("strftime('%s', ...) has no PostgreSQL form here; use unixepoch()")
    elif isinstance(node, exp.Typeof):
        raise Untranslatable("typeof() has no PostgreSQL equivalent (PostgreSQL columns have one type)")
    elif isinstance(node, exp.Glob):
        _glob(node)
    elif isinstance(node, exp.Insert):
        _insert_or(node, target)
    elif isinstance(node, exp.Select) and node.args.get("group"):
        _group_bare_columns(node)
    elif isinstance(node, exp.Match):
        _match(node, target)
    elif isinstance(node, (exp.Greatest, exp.Least)):
        _null_if_any_null(node)
    elif isinstance(node, exp.Limit) and isinstance(node.expression, exp.Neg):
        node.pop()  # LIMIT -1: no limit


def _match(node: exp.Match, target: Target) -> None:
    """`fts MATCH 'words'` → `search @@ websearch_to_tsquery(config, 'words')` (plain words, OR, "phrases")."""
    column = node.this
    select = node.find_ancestor(exp.Select)
    aliases = {t.alias_or_name.lower(): t.name.lower() for t in (select.find_all(exp.Table) if select else [])}
    relation = aliases.get(column.name.lower(), column.name.lower()) if isinstance(column, exp.Column) else None
    if relation not in target.full_text:
        raise Untranslatable("MATCH on a column (a column filter) has no PostgreSQL translation here")
    vector, config = target.full_text[relation]
    query = exp.func("websearch_to_tsquery", exp.Literal.string(config), node.expression.copy())
    qualifier = column.args.get("table")
    ref = exp.Column(this=exp.to_identifier(vector, quoted=True), table=qualifier.copy() if qualifier else None)
    node.replace(_ts_match(ref, query))


def _ts_match(vector: exp.Expression, query: exp.Expression) -> exp.Expression:
    return exp.maybe_parse("__v @@ __q", dialect="postgres").transform(
        lambda n: vector if isinstance(n, exp.Column) and n.name == "__v"
        else query if isinstance(n, exp.Column) and n.name == "__q" else n)


def _null_if_any_null(node: exp.Expression) -> None:
    """SQLite's max(a, b) / min(a, b) are NULL when an argument is; GREATEST / LEAST skip NULLs."""
    args = [node.this, *node.expressions]
    nullable = [a for a in args if not isinstance(a, exp.Literal)]
    if not nullable:
        return
    test = exp.or_(*(exp.Is(this=a.copy(), expression=exp.Null()) for a in nullable))
    node.replace(exp.Case(ifs=[exp.If(this=test, true=exp.Null())], default=node.copy()))


def _group_bare_columns(select: exp.Select) -> None:
    """SQLite lets a grouped query show columns that are neither grouped nor aggregated (one row's value, the
    same for all when the column depends on the grouped key); PostgreSQL wants them in GROUP BY, which then
    leaves the groups as they are."""
    group = select.args["group"]
    grouped = {g.sql() for g in group.expressions}
    for projection in select.expressions:
        for col in projection.find_all(exp.Column):
            if col.is_star or col.sql() in grouped or _aggregated(col, select):
                continue
            group.append("expressions", col.copy())
            grouped.add(col.sql())


def _aggregated(node: exp.Expression, select: exp.Select) -> bool:
    """Whether `node` is inside an aggregate (or a subquery) of `select`."""
    parent = node.parent
    while parent is not None and parent is not select:
        if isinstance(parent, (exp.AggFunc, exp.Subquery, exp.Select, exp.Window)):
            return True
        parent = parent.parent
    return False


def _coalesce_text(node: exp.Coalesce, types: dict[str, str]) -> None:
    """ifnull(number, 'text') is fine in SQLite; PostgreSQL needs one type: the text."""
    args = [node.this, *node.expressions]
    if not any(isinstance(a, exp.Literal) and a.is_string for a in args):
        return
    cast = [exp.cast(a.copy(), "text") if (k := _type_of(a, types)) and not k.startswith(_TEXT_TYPES) else a
            for a in args]
    node.set("this", cast[0])
    node.set("expressions", cast[1:])


def _text_argument(node: exp.GroupConcat) -> None:
    arg = node.this
    if isinstance(arg, exp.Distinct):
        arg.set("expressions", [exp.cast(e.copy(), "text") for e in arg.expressions])
    elif arg is not None:
        node.set("this", exp.cast(arg.copy(), "text"))


def _cast_width(node: exp.Cast) -> None:
    kind = node.to.this
    if kind in (exp.DataType.Type.INT, exp.DataType.Type.SMALLINT, exp.DataType.Type.TINYINT):
        node.set("to", exp.DataType.build("bigint"))  # SQLite integers are 64-bit
    elif kind in (exp.DataType.Type.FLOAT,):
        node.set("to", exp.DataType.build("double"))


def _glob(node: exp.Glob) -> None:
    pattern = node.expression
    if not (isinstance(pattern, exp.Literal) and pattern.is_string) or "[" in pattern.this:
        raise Untranslatable("GLOB with a character class or a non-literal pattern has no PostgreSQL form")
    like = re.sub(r"([%_\\])", r"\\\1", pattern.this).replace("*", "%").replace("?", "_")
    node.replace(exp.Like(this=node.this, expression=exp.Literal.string(like)))


def _timestamp(value: exp.Expression, types: dict[str, str], modifiers: list[exp.Expression] = ()) -> exp.Expression:
    """A SQLite time value with its modifiers as a PostgreSQL timestamp (without time zone, UTC)."""
    mods = list(modifiers)
    kind = _type_of(value, types)
    if isinstance(value, exp.Literal) and value.is_string and value.this.lower() == "now":
        ts = exp.maybe_parse("CURRENT_TIMESTAMP AT TIME ZONE 'UTC'", dialect="postgres")
    elif mods and isinstance(mods[0], exp.Literal) and mods[0].this.lower() == "unixepoch":
        mods.pop(0)
        ts = exp.AtTimeZone(this=exp.func("to_timestamp", value.copy()), zone=exp.Literal.string("UTC"))
    elif kind == "timestamptz":
        ts = exp.AtTimeZone(this=value.copy(), zone=exp.Literal.string("UTC"))
    elif kind == "timestamp":
        ts = value.copy()
    else:
        ts = exp.cast(value.copy(), "timestamp")
    for mod in mods:
        text = mod.this if isinstance(mod, exp.Literal) and mod.is_string else None
        if text is None:
            raise Untranslatable("a date/time modifier that is not a literal has no PostgreSQL form")
        if m := _MODIFIER.match(text):
            ts = exp.Add(this=exp.paren(ts), expression=exp.Interval(
                this=exp.Literal.string(m.group(1).lstrip("+")), unit=exp.var(m.group(2).upper())))
        elif m := _START_OF.match(text):
            ts = exp.func("date_trunc", exp.Literal.string(m.group(1).lower()), ts)
        else:
            raise Untranslatable(f"date/time modifier {text!r} has no PostgreSQL translation")
    return exp.paren(ts)


def _function(node: exp.Anonymous, types: dict[str, str]) -> None:
    name, args = node.name.lower(), list(node.expressions)
    if name in ("date", "datetime", "time", "julianday", "unixepoch"):
        ts = _timestamp(args[0] if args else exp.Literal.string("now"), types, args[1:])
        node.replace({
            "date": lambda: exp.cast(ts, "date"),
            # UTC again as timestamptz: compared with or stored in timestamptz columns whatever the session's zone
            "datetime": lambda: exp.AtTimeZone(this=ts, zone=exp.Literal.string("UTC")),
            "time": lambda: exp.cast(ts, "time"),
            "julianday": lambda: exp.paren(exp.maybe_parse("EXTRACT(EPOCH FROM __t) / 86400.0 + 2440587.5",
                                                            dialect="postgres")
                                           .transform(lambda n: ts if isinstance(n, exp.Column) and n.name == "__t" else n)),
            "unixepoch": lambda: exp.cast(exp.Extract(this=exp.var("EPOCH"), expression=ts), "bigint"),
        }[name]())
    elif name == "total":
        node.replace(exp.cast(exp.Coalesce(this=exp.Sum(this=args[0].copy()), expressions=[exp.Literal.number(0)]),
                              "double precision"))
    elif name == "raise":
        raise Untranslatable("RAISE() outside a trigger's SELECT ... WHERE form")
    elif name in ("printf", "format", "hex", "unhex", "zeroblob", "randomblob", "likelihood", "sqlite_version",
                  "changes", "last_insert_rowid", "total_changes", "quote", "soundex", "char"):
        raise Untranslatable(f"{name}() has no PostgreSQL translation")


def _insert_or(node: exp.Insert, target: Target) -> None:
    alternative = (node.args.get("alternative") or "").upper()
    if not alternative:
        return
    node.set("alternative", None)
    if alternative == "IGNORE":
        node.set("conflict", exp.OnConflict(action=exp.var("DO NOTHING")))
        return
    if alternative != "REPLACE":
        raise Untranslatable(f"INSERT OR {alternative} has no PostgreSQL translation")
    schema = node.this if isinstance(node.this, exp.Schema) else None
    table = (schema.this if schema else node.this).name
    key = target.primary_keys.get(table.lower())
    columns = [i.name for i in schema.expressions] if schema else list(target.columns.get(table.lower(), {}))
    if not key or not columns:
        raise Untranslatable(f"INSERT OR REPLACE into {table}: needs its primary key and column list")
    updates = [exp.EQ(this=exp.column(c, quoted=True),
                      expression=exp.Column(this=exp.to_identifier(c, quoted=True), table=exp.to_identifier("excluded")))
               for c in columns if c.lower() not in {k.lower() for k in key}]
    node.set("conflict", exp.OnConflict(
        conflict_keys=[exp.Ordered(this=exp.column(k, quoted=True)) for k in key],
        action=exp.var("DO UPDATE" if updates else "DO NOTHING"), expressions=updates))
