"""SQLite SQL → PostgreSQL SQL through sqlglot, with identifiers resolved as SQLite resolves them.

SQLite matches identifiers case-insensitively; the target keeps the source's
names and quotes every identifier, so each identifier in a translated text is
replaced by the target name it resolves to (`names`: lower-case source name →
target name) and quoted. Anything sqlglot cannot parse or render raises
Untranslatable with a one-line reason, so callers report it with its SQL.
"""

from __future__ import annotations

from collections.abc import Mapping

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
