"""Asset checks guarding each target table: the validation phase as Dagster asset checks.

(No `from __future__ import annotations`: Dagster reads the context and resource annotations at runtime.)

Source facts come from the run context's facts store, where the transform
step left them (stamped with the staged files they were read from), in
whatever process either runs; when missing or stale they are read from
staging again.
"""

import json
from typing import Any

import dagster as dg

from nova_pipeline.orchestration.defs.keys import table_of, table_tags
from nova_pipeline.orchestration.defs.resources import MongoResource, Nova, PostgresResource
from nova_pipeline.core.spec import Spec
from nova_pipeline.core import results as r
from nova_pipeline.validate.mongo_checks import mongo_checks
from nova_pipeline.validate.postgres_checks import postgres_checks
from nova_pipeline.validate.all_checks import run_all_checks
from nova_pipeline.pipeline.table import table_facts

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


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def build_table_checks(spec: Spec, table: str, asset_key: dg.AssetKey) -> list[dg.AssetChecksDefinition]:
    """One multi-asset check running every validation check of `table` against its target asset."""
    target = spec.tables[table].target
    names = r.POSTGRES_CHECKS if target == "postgres" else r.MONGO_CHECKS
    specs = [dg.AssetCheckSpec(n, asset=asset_key, blocking=n in r.BLOCKING, description=DESCRIPTIONS[n].format(t=table))
             for n in names]
    op = "".join(c if c.isalnum() else "_" for c in "_".join(asset_key.path))

    return [dg.multi_asset_check(specs=specs, name=f"validate_{op}", op_tags=table_tags(table),
                                 description=f"Validation of `{table}` in {target}.")(validate_table_step)]


def validate_table_step(context: dg.AssetCheckExecutionContext, nova: Nova, postgres: PostgresResource,
                        mongo: MongoResource):
    """The step of one table's checks: every check against the source facts its transform step began."""
    s, table = nova.spec, table_of(context)
    asset_key = context.check_specs[0].asset_key
    facts = table_facts(nova, table)  # begun by the transform step
    if s.tables[table].target == "postgres":
        with postgres.connect(s, autocommit=True) as conn:
            results = postgres_checks(conn, s, table, facts)
    else:
        results = mongo_checks(mongo.database(s), s, table, facts)
    for res in results:
        yield check_result(asset_key, res, with_facts=True)


def check_result(asset_key: dg.AssetKey, res: r.CheckResult, partition: str | None = None, with_facts: bool = False):
    """A check result as Dagster's: the step's own result, or one partition's evaluation; `with_facts` adds the
    check's seconds and the facts it compared."""
    meta = {"detail": res.detail, "failing_keys": dg.MetadataValue.json(_jsonable(res.failing_keys))}
    if with_facts:
        meta |= {"seconds": res.metadata.get("seconds", 0.0), "facts": dg.MetadataValue.json(_jsonable(res.metadata))}
    severity = dg.AssetCheckSeverity.ERROR if res.severity == "ERROR" else dg.AssetCheckSeverity.WARN
    if partition is None:
        return dg.AssetCheckResult(asset_key=asset_key, check_name=res.check, passed=res.passed,
                                   description=res.detail, severity=severity, metadata=meta)
    return dg.AssetCheckEvaluation(asset_key=asset_key, check_name=res.check, passed=res.passed, partition=partition,
                                   description=res.detail, severity=severity, metadata=meta)
