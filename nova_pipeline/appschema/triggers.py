"""SQLite triggers → PL/pgSQL trigger functions and row triggers.

The common form is carried over: BEFORE / AFTER / INSTEAD OF, INSERT / DELETE /
UPDATE [OF columns], FOR EACH ROW, an optional WHEN condition, and a body of
UPDATE / INSERT / DELETE statements with NEW./OLD. references, plus the
validation idiom `SELECT RAISE(ABORT, 'message') [FROM ...] WHERE condition`.
The WHEN condition is tested inside the function (SQLite allows subqueries
there, PostgreSQL's trigger WHEN does not), with SQLite's meaning: NULL is false.

SQLite's recursive_triggers is off by default: a trigger never fires again while
it runs (an `AFTER UPDATE ON t` trigger that updates t does not loop). The
function keeps that: a transaction-local setting marks it running, and a
nested firing returns at once. Triggers are created after the load, so they
never fire on migrated rows; functions carry a comment that lets a re-run find
and drop them before it loads again.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field

import sqlglot
from psycopg import sql
from sqlglot import exp
from sqlglot.errors import SqlglotError
from sqlglot.tokens import TokenType

from nova_pipeline.appschema.app_sql import Target, translate_tree
from nova_pipeline.core.identifiers import fit_identifier
from nova_pipeline.core.sql_translate import Untranslatable, parse, render

FUNCTION_COMMENT = "nova-pipeline trigger function"


@dataclass
class TriggerPlan:
    """One source trigger: its PostgreSQL statements, or why it is not carried over."""

    name: str
    table: str
    sqlite_sql: str
    statements: list[str] = field(default_factory=list)
    reason: str | None = None


@dataclass(frozen=True)
class _Parts:
    timing: str  # BEFORE | AFTER | INSTEAD OF
    event: str  # INSERT | UPDATE | DELETE
    of_columns: list[str]
    table: str
    when: str | None
    body: list[str]


def _parts(create_sql: str) -> _Parts:
    try:
        tokens = sqlglot.tokenize(create_sql, read="sqlite")
    except SqlglotError as e:
        raise Untranslatable(f"cannot read the trigger: {str(e).splitlines()[0]}") from None
    begin = next((i for i, t in enumerate(tokens) if t.token_type == TokenType.BEGIN), None)
    end = max((i for i, t in enumerate(tokens) if t.token_type == TokenType.END), default=None)
    if begin is None or end is None or end < begin:
        raise Untranslatable("no BEGIN ... END body")
    when = next((i for i, t in enumerate(tokens[:begin]) if t.token_type == TokenType.WHEN), None)
    header = [t.text if t.token_type == TokenType.IDENTIFIER else t.text.upper() for t in tokens[:when or begin]]
    names = [t.text for t in tokens[:when or begin]]
    words = " ".join(header)
    m = re.search(r"\b(BEFORE|AFTER|INSTEAD OF)?\s*\b(INSERT|DELETE|UPDATE)\b", words)
    on = max(i for i, w in enumerate(header) if w == "ON")
    if m is None:
        raise Untranslatable("no INSERT, UPDATE or DELETE event")
    event_at = next(i for i, w in enumerate(header) if w in ("INSERT", "DELETE", "UPDATE"))
    of_columns = []
    if header[event_at + 1:event_at + 2] == ["OF"]:
        of_columns = [n for n, w in zip(names[event_at + 2:on], header[event_at + 2:on]) if w != ","]
    table = names[on + 1:]
    if len(table) >= 3 and table[1] == ".":  # schema.table
        table = table[2:]
    rest = " ".join(header[on + 2:])
    if rest and rest != "FOR EACH ROW":
        raise Untranslatable(f"unexpected {rest!r} after the table name")
    when_sql = create_sql[tokens[when].end + 1:tokens[begin].start].strip() if when is not None else None
    body, start = [], tokens[begin].end + 1
    for t in tokens[begin + 1:end]:
        if t.token_type == TokenType.SEMICOLON:
            body.append(create_sql[start:t.start].strip())
            start = t.end + 1
    body.append(create_sql[start:tokens[end].start].strip())
    return _Parts(m.group(1) or "BEFORE", m.group(2), of_columns, table[0], when_sql, [b for b in body if b])


def _raise_statement(tree: exp.Expression, target: Target, relation: str, ignore: str) -> str | None:
    """`SELECT RAISE(kind, 'message') [FROM ...] WHERE cond` (or CASE WHEN cond THEN RAISE(...) END) as PL/pgSQL;
    `ignore` is what RAISE(IGNORE) does (leave the trigger, skipping the row's change)."""
    if not isinstance(tree, exp.Select) or len(tree.expressions) != 1:
        return None
    call, cond = tree.expressions[0], None
    if isinstance(call, exp.Case) and len(call.args.get("ifs") or []) == 1 and not call.args.get("default"):
        cond, call = call.args["ifs"][0].this, call.args["ifs"][0].args["true"]
    if not (isinstance(call, exp.Anonymous) and call.name.upper() == "RAISE"):
        return None
    kind = call.expressions[0].name.upper() if call.expressions else ""
    message = call.expressions[1] if len(call.expressions) > 1 else None
    if kind == "IGNORE":
        action = ignore
    elif kind in ("ABORT", "FAIL", "ROLLBACK") and isinstance(message, exp.Literal) and message.is_string:
        action = f"RAISE EXCEPTION '%', {sql.Literal(message.this).as_string(None)};"
    else:
        raise Untranslatable(f"RAISE({kind}, ...) with a non-literal message")
    tree = tree.copy()
    where = tree.args.get("where")
    if cond is not None:
        where = exp.Where(this=exp.and_(where.this, cond) if where else cond)
    if tree.args.get("from_") or tree.args.get("from"):
        tree.set("expressions", [exp.Literal.number(1)])
        tree.set("where", where)
        test = f"EXISTS ({render(translate_tree(tree, target, relation))})"
    elif where is not None:
        test = render(translate_tree(exp.select(exp.paren(where.this)), target, relation)).removeprefix("SELECT ")
    else:
        return action
    return f"IF {test} THEN {action} END IF;"


def plan_trigger(name: str, table: str, create_sql: str, target: Target, schema: str) -> TriggerPlan:
    """The PostgreSQL function and trigger of one SQLite trigger (reason set when it does not translate)."""
    plan = TriggerPlan(name, table, create_sql)
    try:
        parts = _parts(create_sql)
        relation = target.relations.get(parts.table.lower())
        if relation is None:
            raise Untranslatable(f"its table {parts.table} is not migrated to PostgreSQL")
        if parts.timing == "INSTEAD OF" and parts.of_columns:
            raise Untranslatable("INSTEAD OF UPDATE OF columns has no PostgreSQL form")
        row = relation[1].lower()
        returns = "NULL" if parts.timing == "AFTER" else ("OLD" if parts.event == "DELETE" else "NEW")
        guard = "nova.trigger_" + hashlib.sha1(f"{schema}.{name}".encode()).hexdigest()[:16]
        lines = [f"IF current_setting('{guard}', true) = 'on' THEN RETURN {returns}; END IF;"]
        if parts.when:
            cond = render(translate_tree(exp.select(exp.paren(parse(f"SELECT {parts.when}").expressions[0])),
                                         target, row)).removeprefix("SELECT ")
            lines.append(f"IF ({cond}) IS NOT TRUE THEN RETURN {returns}; END IF;")
        lines.append(f"PERFORM set_config('{guard}', 'on', true);")
        for text in parts.body:
            tree = parse(text)
            stmt = _raise_statement(tree, target, row, f"PERFORM set_config('{guard}', 'off', true); RETURN NULL;")
            if stmt is None:
                if not isinstance(tree, (exp.Update, exp.Insert, exp.Delete)):
                    raise Untranslatable(f"body statement is not UPDATE, INSERT or DELETE: {text[:60]}")
                stmt = render(translate_tree(tree, target, row)) + ";"
            lines.append(stmt)
        lines += [f"PERFORM set_config('{guard}', 'off', true);", f"RETURN {returns};"]
    except (Untranslatable, SqlglotError) as e:
        plan.reason = str(e).splitlines()[0]
        return plan
    function = sql.Identifier(schema, fit_identifier(f"nova_trg_{name}")).as_string(None)
    trigger = sql.Identifier(fit_identifier(name)).as_string(None)
    on = sql.Identifier(*relation).as_string(None)
    of = (" OF " + ", ".join(sql.Identifier(target.names.get(c.lower(), c)).as_string(None) for c in parts.of_columns)
          if parts.of_columns else "")
    body = "\n".join(f"  {line}" for line in lines)
    plan.statements = [
        f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $nova$\nBEGIN\n{body}\nEND\n$nova$",
        f"COMMENT ON FUNCTION {function}() IS {sql.Literal(f'{FUNCTION_COMMENT} of SQLite trigger {name}').as_string(None)}",
        f"DROP TRIGGER IF EXISTS {trigger} ON {on}",
        f"CREATE TRIGGER {trigger} {parts.timing} {parts.event}{of} ON {on} FOR EACH ROW EXECUTE FUNCTION {function}()",
    ]
    return plan


DROP_QUERY = (
    "SELECT t.tgname, t.tgrelid::regclass::text FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid"
    " WHERE NOT t.tgisinternal AND obj_description(p.oid, 'pg_proc') LIKE %s")


def drop_statements(conn) -> list[sql.Composed]:
    """DROP TRIGGER statements for every trigger a migration created (found by its function's comment)."""
    rows = conn.execute(DROP_QUERY, (FUNCTION_COMMENT + "%",)).fetchall()
    return [sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(sql.Identifier(name), sql.SQL(relation))
            for name, relation in rows]
