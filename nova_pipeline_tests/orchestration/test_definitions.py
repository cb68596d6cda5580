"""The code location loads and holds the expected assets, checks, jobs, schedules and sensors."""

from pathlib import Path

import dagster as dg

from nova_pipeline.orchestration.defs.build import build_definitions
from nova_pipeline.core.spec import load_spec

SAMPLE_SPEC = Path(__file__).parents[2] / "data" / "nova.spec.yaml"


def test_sample_code_location_is_complete():
    spec = load_spec(SAMPLE_SPEC)
    defs = build_definitions(spec, str(SAMPLE_SPEC))
    dg.Definitions.validate_loadable(defs)
    keys = {k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys()}
    for fixed in ["source/snapshot", "source/profile", "setup/postgres_schema", "setup/mongo_collections",
                  "postgres/constraints", "validation/smoke_tests", "reports/migration_report"]:
        assert fixed in keys
    for name, t in spec.table_items():
        assert f"staging/raw/{name}" in keys and f"staging/clean/{name}" in keys
    assert "postgres/core/users" in keys
    assert "mongo/nova_logs/audit_logs" in keys
    jobs = {j.name for j in defs.resolve_all_job_defs()}
    assert {"migrate", "migrate_postgres", "migrate_mongo"} <= jobs
    sensors = {s.name for s in defs.sensors}
    assert "sqlite_source_changed" in sensors
    checks = defs.resolve_asset_graph().asset_check_keys
    checked_assets = {k.asset_key.to_user_string() for k in checks}
    assert "postgres/core/users" in checked_assets and "mongo/nova_logs/audit_logs" in checked_assets


def test_definitions_module_loads_from_nova_spec(monkeypatch):
    import importlib

    monkeypatch.setenv("NOVA_SPEC", str(SAMPLE_SPEC))
    import nova_pipeline.orchestration.definitions as module

    module = importlib.reload(module)
    assert isinstance(module.defs, dg.Definitions)


def test_per_table_steps_name_their_table_by_op_tag():
    """Every per-table step runs one shared function that reads its table from the op tag: no step closes
    over a table (or the spec) at build time."""
    from nova_pipeline.orchestration.defs import assets, checks, partitions
    from nova_pipeline.orchestration.defs.keys import TABLE_TAG

    spec = load_spec(SAMPLE_SPEC)
    defs = build_definitions(spec, str(SAMPLE_SPEC))
    graph = defs.resolve_asset_graph()
    nodes = {id(a): a for a in graph.assets_defs} | {id(c): c for c in defs.asset_checks}
    per_table = [n for n in nodes.values() if TABLE_TAG in n.op.tags]
    tables = {n.op.tags[TABLE_TAG] for n in per_table}
    assert tables == {name for name, _ in spec.table_items()}
    steps = {n.op.compute_fn.decorated_fn for n in per_table}
    assert steps == {assets.migrate_table_step, checks.validate_table_step, partitions.load_partitions_step,
                     partitions.validate_partitions_step}
