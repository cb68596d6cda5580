"""Every check of every migrated table against existing targets, without Dagster (CLI `validate`)."""

from __future__ import annotations

from nova_pipeline.core.connections import connect_postgres, mongo_client
from nova_pipeline.core.run_context import RunContext
from nova_pipeline.core.spec import Spec
from nova_pipeline.core.staging import Staging
from nova_pipeline.core import results as r
from nova_pipeline.validate.mongo_checks import mongo_checks
from nova_pipeline.validate.postgres_checks import postgres_checks
from nova_pipeline.core.results import CheckResult
from nova_pipeline.validate.source_facts import source_facts


def table_checks(spec: Spec, table: str, facts: dict, *, pg_url: str | None, mongo_uri: str | None) -> list[CheckResult]:
    """The checks of one table against its target, given its source facts."""
    target = spec.tables[table].target
    if target == "postgres":
        if not pg_url:
            raise ValueError(f"table {table!r}: no PostgreSQL URL to validate against")
        with connect_postgres(pg_url, autocommit=True) as conn:
            return postgres_checks(conn, spec, table, facts)
    if not mongo_uri:
        raise ValueError(f"table {table!r}: no MongoDB URI to validate against")
    return mongo_checks(mongo_client(mongo_uri)[spec.targets.mongo.database], spec, table, facts)


def run_all_checks(spec: Spec, pg_url: str | None, mongo_uri: str | None, staging: Staging) -> list[CheckResult]:
    """Source facts from staging, then every check of every migrated table, in spec order."""
    out: list[CheckResult] = []
    for name, _ in spec.table_items():
        if not staging.files("clean", name):
            out.append(CheckResult(name, r.ROW_RECONCILIATION, False,
                                   f"{r.ROW_RECONCILIATION}: no clean Parquet for {name} in {staging.uri}; run the migration first "
                                   "(a successful one removes its staging unless the spec says keep_staging: true)"))
            continue
        out += table_checks(spec, name, source_facts(spec, name, staging), pg_url=pg_url, mongo_uri=mongo_uri)
    snapshot = RunContext.for_spec(spec).taken_snapshot() if pg_url and spec.table_items("postgres") else None
    if snapshot:
        from nova_pipeline.appschema import app_objects  # it reports through this package's CheckResult

        with connect_postgres(pg_url, autocommit=True) as conn:
            out += app_objects.run_checks(spec, snapshot, conn)  # views' rows, parity statements
    return out
