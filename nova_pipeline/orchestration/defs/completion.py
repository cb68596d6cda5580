"""Phases 7 and 8: smoke tests against the targets, and the migration report."""


import json
from typing import Any

import dagster as dg
from nova_pipeline.orchestration.defs.app_objects import latest_not_carried
from nova_pipeline.load import postgres_ddl
from nova_pipeline.report import report
from nova_pipeline.validate import smoke
from nova_pipeline.orchestration.defs.keys import (APP_OBJECTS, PG_CONSTRAINTS, REPORT, SMOKE_TESTS, SNAPSHOT, clean_key,
                                                    migration_id, raw_key, target_key)
from nova_pipeline.orchestration.defs.resources import MongoResource, Nova, PostgresResource
from nova_pipeline.extract.snapshot import verified_facts
from nova_pipeline.pipeline.report import count_report
from nova_pipeline.core.spec import Spec


def snapshot_taken_in_run(instance: dg.DagsterInstance, run_id: str) -> dict | None:
    """sha256 and taken_at of the snapshot the run took, or the run it resumed (nova/resumed_from) took; None
    when none of them took one."""
    seen = set()
    while run_id and run_id not in seen:
        seen.add(run_id)
        for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            mat = record.asset_materialization
            if mat is not None and mat.asset_key == SNAPSHOT:
                return {k: mat.metadata[k].value for k in ("sha256", "taken_at") if k in mat.metadata}
        run = instance.get_run_by_id(run_id)
        run_id = (run.tags.get("nova/resumed_from") or run.tags.get("nova/migration")) if run else None
    return None


def latest_check_results(instance: dg.DagsterInstance, asset_checks: list[dg.AssetCheckKey]) -> list[dict[str, Any]]:
    """The latest evaluation of each asset check, as report rows."""
    rows, records = [], instance.event_log_storage.get_latest_asset_check_execution_by_key(asset_checks)
    for key in asset_checks:
        rec = records.get(key)
        ev = rec.event.dagster_event.event_specific_data if rec and rec.event and rec.event.dagster_event else None
        if ev is None or not hasattr(ev, "passed"):
            continue
        meta = {k: getattr(v, "value", v) for k, v in (ev.metadata or {}).items()}
        rows.append({"table": "/".join(key.asset_key.path), "check": key.name, "passed": ev.passed,
                     "severity": ev.severity.value if ev.severity else None,
                     "detail": str(meta.get("detail", "")), "failing_keys": meta.get("failing_keys", [])})
    return rows


def latest_smoke_checks(instance: dg.DagsterInstance, run_ids: list[str] | None = None) -> list[dict[str, Any]]:
    """The last smoke_tests materialization's results (in `run_ids`, oldest first, when given: a migration of
    another spec shares the instance and the asset key), as report check rows."""
    ev = latest_materializations(instance, [SMOKE_TESTS], run_ids).get(SMOKE_TESTS)
    meta = ev.asset_materialization.metadata if ev and ev.asset_materialization else {}
    return list(meta["checks"].value) if "checks" in meta else []


def latest_materializations(instance: dg.DagsterInstance, keys: list[dg.AssetKey],
                            run_ids: list[str] | None = None) -> dict[dg.AssetKey, dg.EventLogEntry]:
    """The latest materialization event of each key: in the instance, or in `run_ids` (oldest first) when given."""
    if run_ids is None:
        return instance.get_latest_materialization_events(keys)
    wanted, found = set(keys), {}
    for run_id in run_ids:
        for rec in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION):
            if rec.asset_materialization and rec.asset_materialization.asset_key in wanted:
                found[rec.asset_materialization.asset_key] = rec
    return found


def stored_report(instance: dg.DagsterInstance, run_ids: list[str]) -> report.MigrationReport | None:
    """The report the last migration_report materialization in `run_ids` built, None when none did."""
    ev = latest_materializations(instance, [REPORT], run_ids).get(REPORT)
    meta = ev.asset_materialization.metadata if ev and ev.asset_materialization else {}
    return report.MigrationReport.from_dict(json.loads(meta["report_json"].value)) if "report_json" in meta else None


def latest_seconds(instance: dg.DagsterInstance, spec: Spec, run_ids: list[str] | None = None) -> dict[str, float]:
    """Per table: seconds of its last export + transform + load materializations (in `run_ids` when given)."""
    out: dict[str, float] = {}
    keys = {name: [k for k in (raw_key(name), clean_key(name), target_key(spec, name)) if k]
            for name, _ in spec.table_items()}
    events = latest_materializations(instance, [k for ks in keys.values() for k in ks], run_ids)
    for name, table_keys in keys.items():
        total = 0.0
        for key in table_keys:
            ev = events.get(key)
            mat = ev.asset_materialization if ev else None
            if mat and "seconds" in mat.metadata:
                total += float(mat.metadata["seconds"].value)
        if total:
            out[name] = round(total, 3)
    return out


def build_completion_assets(spec: Spec, check_keys: list[dg.AssetCheckKey]) -> list[dg.AssetsDefinition]:
    """The smoke_tests and migration_report assets."""
    upstream = [k for n, _ in spec.table_items() if (k := target_key(spec, n))]
    if spec.table_items("postgres"):
        upstream += [PG_CONSTRAINTS, APP_OBJECTS]  # smoke tests may read views

    @dg.asset(key=SMOKE_TESTS, deps=upstream, group_name="validation", kinds={"postgres", "mongodb"},
              description="The spec's application queries against the targets, with expected results and "
                          "latency budgets, plus target health (server versions, sizes).")
    def smoke_tests(context: dg.AssetExecutionContext, nova: Nova, postgres: PostgresResource,
                    mongo: MongoResource) -> dg.MaterializeResult:
        s = nova.spec
        mongo_db = mongo.database(s) if s.table_items("mongo") and mongo.uri(s) else None
        health: dict[str, Any] = {}
        with postgres.connect(s) as conn:
            results = smoke.run_smoke_tests(s, conn, mongo_db)
            health["postgres"] = smoke.postgres_health(conn)
        if mongo_db is not None:
            health["mongo"] = smoke.mongo_health(mongo_db)
        failed = [r for r in results if not r.passed]
        for r in failed:
            context.log.error(f"smoke test {r.name}: {r.detail}")
        table = "\n".join(["| test | target | result | rows | ms | detail |", "|---|---|---|---:|---:|---|"]
                          + [f"| {r.name} | {r.target} | {'pass' if r.passed else 'FAIL'} | {r.rows} | {r.ms} | {r.detail} |"
                             for r in results])
        return dg.MaterializeResult(metadata={
            "passed": len(results) - len(failed), "failed": len(failed), "results": dg.MetadataValue.md(table),
            "checks": dg.MetadataValue.json([r.as_check() for r in results]),
            "health": dg.MetadataValue.json(health)})

    @dg.asset(key=REPORT, deps=[SMOKE_TESTS], group_name="reports", kinds={"json"},
              description="Migration report (JSON + Markdown in the spec's reports directory): per table source, "
                          "loaded and quarantined rows, timings and every check's result.")
    def migration_report(context: dg.AssetExecutionContext, nova: Nova, postgres: PostgresResource,
                         mongo: MongoResource) -> dg.MaterializeResult:
        s = nova.spec
        checks = latest_check_results(context.instance, check_keys) + latest_smoke_checks(context.instance)
        mongo_db = mongo.database(s) if s.table_items("mongo") and mongo.uri(s) else None
        rep = count_report(
            nova, postgres_url=postgres.url(s), mongo_db=mongo_db, run_id=migration_id(context),
            started_at=report.now_iso(), seconds=latest_seconds(context.instance, s), errors={}, checks=checks,
            notes=(["MongoDB documents went to the in-process double (mongomock), not a server."]
                   if mongo_db is not None and mongo.is_mock(s) else [])
            + [f"not translated: {line}" for line in postgres_ddl.untranslated_checks(s)]
            + (latest_not_carried(context.instance) or []))
        rep.snapshot = verified_facts(nova, snapshot_taken_in_run(context.instance, context.run_id))
        if "problem" in rep.snapshot:
            rep.status, rep.notes = "failed", [*rep.notes, rep.snapshot["problem"]]
        if any(t.status == "failed" for t in rep.tables.values()) or any(not c["passed"] for c in checks
                                                                          if c.get("severity") == "ERROR"):
            rep.status = "failed"
        path = report.write_report(rep, s.resolve(s.reports))
        totals = rep.to_dict()["totals"]
        return dg.MaterializeResult(metadata={
            "status": rep.status, "path": dg.MetadataValue.path(str(path)),
            "dagster/row_count": totals["loaded_rows"], "quarantined_rows": totals["quarantined_rows"],
            "failed_checks": totals["checks_failed"], "summary": dg.MetadataValue.md(rep.to_markdown()),
            "chart": dg.MetadataValue.path(str(path.parent / report.REPORT_CHART)),
            # What the CLI's reconcile reads: the JSON as written (JSON metadata would sort its keys).
            "report_json": dg.MetadataValue.text(path.read_text())})

    return [smoke_tests, migration_report]
