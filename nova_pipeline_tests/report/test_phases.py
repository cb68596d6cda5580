"""The report's phase table: seconds per phase from the migration's runs, rows/s where rows move."""

from types import SimpleNamespace

from nova_pipeline.orchestration.dagster_storage import dagster_instance
from nova_pipeline.orchestration.defs.keys import clean_key
from nova_pipeline.report import phases
from nova_pipeline.report.report import MigrationReport, TableReport
from nova_pipeline_tests.cli_runs import init_and_migrate
from nova_pipeline_tests.orchestration.test_migration_e2e import make_foreign_db


def test_phase_table_counts_the_rows_each_phase_handles():
    tables = {"a": SimpleNamespace(target="postgres", source_rows=1000),
              "b": SimpleNamespace(target="mongo", source_rows=500)}
    rows = phases.phase_table({"snapshot": 0.5, "setup": 0.2, "load postgres": 2.0, "load mongo": 0.0,
                               "validation mongo": 0.25, "dagster overhead": 1.0}, tables)
    assert [r["phase"] for r in rows] == ["snapshot", "setup", "load postgres", "validation mongo", "dagster overhead"]
    by = {r["phase"]: r for r in rows}
    assert (by["snapshot"]["rows"], by["snapshot"]["rows_per_s"]) == (1500, 3000.0)
    assert (by["load postgres"]["rows"], by["load postgres"]["rows_per_s"]) == (1000, 500.0)
    assert (by["validation mongo"]["rows"], by["validation mongo"]["rows_per_s"]) == (500, 2000.0)
    assert by["setup"]["rows"] is None and by["setup"]["rows_per_s"] is None


def test_markdown_has_a_phases_section_only_with_phases():
    rep = MigrationReport(status="succeeded", started_at="t0", finished_at="t1", run_id="r", spec=None,
                          tables={"a": TableReport(target="postgres", target_name="public.a", source_rows=10)})
    assert "## Phases" not in rep.to_markdown()
    rep.phases = phases.phase_table({"export": 0.5, "report": 0.1}, rep.tables)
    md = rep.to_markdown()
    assert "| phase | s | rows | rows/s |" in md and "| export | 0.50 | 10 | 20 |" in md and "| report | 0.10 | - | - |" in md
    assert MigrationReport.from_dict(rep.to_dict()).phases == rep.phases


def test_migrate_report_says_where_the_time_went(tmp_path, pg_url):
    db = tmp_path / "shop.sqlite"
    make_foreign_db(db)
    run = init_and_migrate(tmp_path, db, pg_url, spec_name="shop.yaml")
    assert run.res.exit_code == 0, run.res.output
    by = {p["phase"]: p for p in run.report["phases"]}
    for phase in ("snapshot", "export", "transform", "load postgres", "validation postgres"):
        assert by[phase]["seconds"] > 0, phase
    source = sum(t["source_rows"] for t in run.report["tables"].values())
    assert by["export"]["rows"] == by["load postgres"]["rows"] == source
    assert "## Phases" in (run.spec.resolve(run.spec.reports) / "migration_report.md").read_text()

    # An in_process run hands each table's source facts to the facts worker: the migrate steps spend no time on
    # them (the check steps, which wait for them, count as validation).
    instance = dagster_instance()
    facts = [instance.get_latest_materialization_event(clean_key(t)).asset_materialization.metadata["facts_seconds"].value
             for t in run.report["tables"]]
    assert facts and all(f == 0 for f in facts)
