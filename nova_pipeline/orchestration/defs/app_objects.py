"""The `postgres/app_objects` asset (views, triggers, full-text search after the load) and its checks:
each view's rows against SQLite's, and the spec's parity statements on both sides.

(No `from __future__ import annotations`: Dagster reads the context and resource annotations at runtime.)
"""

from contextlib import closing

import dagster as dg

from nova_pipeline.appschema import app_objects
from nova_pipeline.orchestration.defs.keys import APP_OBJECTS, PG_CONSTRAINTS
from nova_pipeline.orchestration.defs.resources import Nova, PostgresResource
from nova_pipeline.extract.snapshot import connect_readonly
from nova_pipeline.core.spec import Spec


def build_app_objects_defs(spec: Spec) -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]]:
    """The asset and its checks (none without PostgreSQL tables)."""
    if not spec.table_items("postgres"):
        return [], []

    @dg.asset(key=APP_OBJECTS, deps=[PG_CONSTRAINTS], group_name="postgres", kinds={"postgres"},
              description="The source's views (SQL translated, in dependency order), triggers (PL/pgSQL, created "
                          "after the load) and FTS tables' full-text search (tsvector + GIN); what is not carried "
                          "over is listed with its reason and SQL.")
    def app_objects_asset(context: dg.AssetExecutionContext, nova: Nova, postgres: PostgresResource):
        s = nova.spec
        with closing(connect_readonly(nova.local_snapshot())) as conn:
            objects = app_objects.plan_objects(s, conn)
        with postgres.connect(s, autocommit=True) as conn:
            app_objects.create_objects(conn, objects)
        missing = app_objects.not_carried(objects)
        for line in missing:
            context.log.warning(line)
        return dg.MaterializeResult(metadata={
            "carried_over": dg.MetadataValue.json([f"{o.kind} {o.name}" for o in objects if o.carried]),
            "not_carried_over": dg.MetadataValue.json(missing),
            "sql": dg.MetadataValue.md("\n".join(app_objects.summary_lines([o.to_dict() for o in objects])) or "none")})

    specs = [dg.AssetCheckSpec(app_objects.parity_check_name(p.name), asset=APP_OBJECTS, blocking=p.blocking,
                               description=f"Parity: `{p.name}` gives the same outcome and rows on SQLite and PostgreSQL.")
             for p in spec.parity]
    if spec.app_objects.view_check != "off":
        specs.insert(0, dg.AssetCheckSpec(app_objects.VIEW_ROWS, asset=APP_OBJECTS, blocking=spec.app_objects.view_check == "blocking",
                                          description="Each recreated view returns the same rows as SQLite's view "
                                                      "on the run's snapshot."))
    if not specs:
        return [app_objects_asset], []

    @dg.multi_asset_check(specs=specs, name="validate_app_objects",
                          description="Views and the application's statements compared with SQLite.")
    def validate_app_objects(nova: Nova, postgres: PostgresResource):
        s = nova.spec
        with postgres.connect(s, autocommit=True) as pg:
            results = app_objects.run_checks(s, nova.local_snapshot(), pg)
        for r in results:
            yield dg.AssetCheckResult(
                asset_key=APP_OBJECTS, check_name=r.check, passed=r.passed, description=r.detail,
                severity=dg.AssetCheckSeverity.ERROR if r.severity == "ERROR" else dg.AssetCheckSeverity.WARN,
                metadata={"detail": r.detail, **{k: dg.MetadataValue.json(v) if isinstance(v, dict) else v
                                                 for k, v in r.metadata.items()}})

    return [app_objects_asset], [validate_app_objects]


def latest_not_carried(instance: dg.DagsterInstance) -> list[str] | None:
    """What the last app_objects materialization reported as not carried over (None when it never ran)."""
    ev = instance.get_latest_materialization_event(APP_OBJECTS)
    meta = ev.asset_materialization.metadata if ev and ev.asset_materialization else {}
    return list(meta["not_carried_over"].value) if "not_carried_over" in meta else None
