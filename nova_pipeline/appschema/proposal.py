"""`init`'s proposal: every table (extract.introspect) plus views, triggers, full-text search and parity statements."""

from __future__ import annotations

from pathlib import Path

from nova_pipeline.appschema import app_objects
from nova_pipeline.extract.introspect import TypeReport, propose_tables


def propose_spec(sqlite_path: str | Path, *, postgres_schema: str = "public") -> tuple[dict, TypeReport]:
    """A spec mapping (for parse_spec) proposing every table → PostgreSQL and the application's objects, and the TypeReport."""
    spec, report, schema = propose_tables(sqlite_path, postgres_schema=postgres_schema)
    app_objects.propose(spec, schema, Path(sqlite_path), report)
    return spec, report
