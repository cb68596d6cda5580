"""Target identifiers: PostgreSQL's 63-byte limit and deterministic, reported renames.

Source names are kept as they are (spaces, quotes, mixed case, reserved words
are fine: every identifier is quoted with psycopg.sql.Identifier). Only names
PostgreSQL cannot hold (longer than 63 bytes in UTF-8) or names that would
collide with another in the same table are renamed, deterministically: the
name is cut on a character boundary and suffixed with 8 hex digits of its
sha1, so the same source always gives the same target.
"""

from __future__ import annotations

import hashlib

from nova_pipeline.core.spec import Spec, TableSpec

PG_MAX_IDENTIFIER_BYTES = 63


def fit_identifier(name: str, limit: int = PG_MAX_IDENTIFIER_BYTES) -> str:
    """`name` if it fits in `limit` UTF-8 bytes, else a deterministic shortened form."""
    if len(name.encode("utf-8")) <= limit:
        return name
    digest = hashlib.sha1(name.encode("utf-8")).hexdigest()[:8]
    head = name.encode("utf-8")[: limit - 9].decode("utf-8", errors="ignore")
    return f"{head}_{digest}"


def unique_identifiers(names: list[str]) -> list[str]:
    """Target identifiers for `names` (same order) that fit and are unique as quoted identifiers."""
    out: list[str] = []
    for name in names:
        target = fit_identifier(name)
        if target in out:
            digest = hashlib.sha1(f"{name}#{len(out)}".encode("utf-8")).hexdigest()[:8]
            target = f"{fit_identifier(name, PG_MAX_IDENTIFIER_BYTES - 9)}_{digest}"
        out.append(target)
    return out


def target_columns(table: TableSpec) -> list[tuple[str, str]]:
    """(source column, target column) pairs in source order, honouring explicit `name`s."""
    wanted = [c.name or s for s, c in table.columns.items()]
    return list(zip(table.columns, unique_identifiers(wanted)))


def target_column(table: TableSpec, source_column: str) -> str:
    """The target name of one source column."""
    return dict(target_columns(table))[source_column]


def pg_table(spec: Spec, source_table: str) -> tuple[str, str]:
    """(schema, table) of a source table's PostgreSQL target."""
    t = spec.tables[source_table]
    schema, name = t.pg_schema_table
    default_schema = spec.targets.postgres.schema_ if spec.targets.postgres else "public"
    return fit_identifier(schema or default_schema), fit_identifier(name or source_table)


def mongo_collection(spec: Spec, source_table: str) -> str:
    """The MongoDB collection of a source table."""
    return spec.tables[source_table].collection or source_table
