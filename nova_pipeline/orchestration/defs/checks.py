"""Asset checks guarding each target table: the validation phase as Dagster asset checks.

(No `from __future__ import annotations`: Dagster reads the context and resource annotations at runtime.)

Source facts come from the `source_facts` metadata of the table's latest
`staging/clean/<table>` materialization when it wrote this spec's staging area
(computed once per run), else they are read from staging (cheap Parquet reads).
"""

import json
from typing import Any

import dagster as dg

from nova_pipeline.orchestration.defs.assets import clean_key, staging_of
from nova_pipeline.orchestration.defs.resources import MongoResource, NovaConfig, PostgresResource
from nova_pipeline.core.spec import Spec
from nova_pipeline.core import results as r
from nova_pipeline.validate.mongo_checks import mongo_checks
from nova_pipeline.validate.postgres_checks import postgres_checks
from nova_pipeline.validate.run import run_all_checks
from nova_pipeline.validate.source_facts import FACTS_VERSION, source_facts

__all__ = ["build_table_checks", "run_all_checks"]

DESCRIPTIONS = {
    r.ROW_RECONCILIATION: "Source rows of `{t}` = rows loaded + rows quarantined, exactly.",
    r.PRIMARY_KEY: "The primary key of `{t}` is unique and never NULL in the target.",
    r.NOT_NULL: "Columns of `{t}` declared NOT NULL hold no NULL.",
    r.FOREIGN_KEYS: "Every foreign key of `{t}` finds its parent row (orphans counted and sampled).",
    r.CHECK_CONSTRAINTS: "Rows of `{t}` breaking one of its CHECKs (added NOT VALID then) are counted and named by key.",
    r.COLUMN_AGGREGATES: "Per column of `{t}`: count, NULLs, min, max and sum equal the source's.",
    r.CONTENT_HASH: "Per-bucket hashes of every row of `{t}` equal the source's; differing rows are named by key.",
    r.EXPECTATIONS: "The spec's expectations on `{t}` (ranges, allowed values, regex), run by Great Expectations.",
    r.QUARANTINE_TOLERANCE: "Rows of `{t}` left in quarantine stay within the spec's tolerance.",
    r.DOCUMENT_COUNT: "Documents (or embedded entries) of `{t}` = source rows − quarantined rows.",
    r.VALIDATOR_COMPLIANCE: "Every document of `{t}` matches its collection's $jsonSchema validator.",
}


def _facts(context: dg.AssetCheckExecutionContext, spec: Spec, table: str) -> dict[str, Any]:
    """The facts of the latest `staging/clean/<table>` materialization when it wrote this spec's staging area;
    a migration of another source with a table of the same name shares the instance and the asset key."""
    staging = staging_of(spec)
    event = context.instance.get_latest_materialization_event(clean_key(table))
    meta = event.asset_materialization.metadata if event and event.asset_materialization else {}
    cached, path = meta.get("source_facts"), meta.get("path")
    if (cached is not None and cached.value.get("version") == FACTS_VERSION
            and path is not None and path.value == staging.dir("clean", table)):
        return cached.value
    return source_facts(spec, table, staging)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def build_table_checks(spec: Spec, table: str, asset_key: dg.AssetKey) -> list[dg.AssetChecksDefinition]:
    """One multi-asset check running every validation check of `table` against its target asset."""
    target = spec.tables[table].target
    names = r.POSTGRES_CHECKS if target == "postgres" else r.MONGO_CHECKS
    specs = [dg.AssetCheckSpec(n, asset=asset_key, blocking=n in r.BLOCKING, description=DESCRIPTIONS[n].format(t=table))
             for n in names]
    op = "".join(c if c.isalnum() else "_" for c in "_".join(asset_key.path))

    @dg.multi_asset_check(specs=specs, name=f"validate_{op}", description=f"Validation of `{table}` in {target}.")
    def validate(context: dg.AssetCheckExecutionContext, nova: NovaConfig, postgres: PostgresResource,
                 mongo: MongoResource):
        s = nova.spec
        facts = _facts(context, s, table)
        if target == "postgres":
            with postgres.connect(s, autocommit=True) as conn:
                results = postgres_checks(conn, s, table, facts)
        else:
            results = mongo_checks(mongo.database(s), s, table, facts)
        for res in results:
            yield dg.AssetCheckResult(
                asset_key=asset_key, check_name=res.check, passed=res.passed, description=res.detail,
                severity=dg.AssetCheckSeverity.ERROR if res.severity == "ERROR" else dg.AssetCheckSeverity.WARN,
                metadata={"detail": res.detail, "failing_keys": dg.MetadataValue.json(_jsonable(res.failing_keys)),
                          "seconds": res.metadata.get("seconds", 0.0),
                          "facts": dg.MetadataValue.json(_jsonable(res.metadata))})

    return [validate]
