"""Report reconciliation and rendering."""

import json

from nova_pipeline.report.report import MigrationReport, TableReport, write_report


def make_report(**table):
    t = TableReport(target="postgres", target_name="core.users", **table)
    return MigrationReport(status="succeeded", started_at="s", finished_at="f", run_id="r", spec="x.yaml",
                           tables={"users": t},
                           checks=[{"table": "users", "check": "content_hash", "passed": True, "severity": "ERROR"},
                                   {"table": "users", "check": "validator", "passed": False, "severity": "WARN"}])


def test_reconciled_when_source_equals_loaded_plus_quarantined():
    assert make_report(source_rows=10, loaded_rows=8, quarantined_rows=2).tables["users"].reconciled
    assert not make_report(source_rows=10, loaded_rows=8, quarantined_rows=1).tables["users"].reconciled


def test_totals_separate_failures_from_warnings():
    d = make_report(source_rows=10, loaded_rows=10).to_dict()
    assert d["totals"]["checks_failed"] == 0 and d["totals"]["checks_warned"] == 1
    assert d["tables"]["users"]["reconciled"] is True


def test_markdown_flags_unreconciled_tables():
    md = make_report(source_rows=10, loaded_rows=7, quarantined_rows=1).to_markdown()
    assert "NOT RECONCILED" in md and "| users |" in md and "| warn |" in md


def test_write_report_keeps_latest_and_history(tmp_path):
    rep = make_report(source_rows=1, loaded_rows=1)
    path = write_report(rep, tmp_path / "reports", tmp_path / "out.json")
    assert json.loads(path.read_text())["tables"]["users"]["loaded_rows"] == 1
    assert (tmp_path / "out.json").exists() and (tmp_path / "reports" / "migration_report.md").exists()
    assert len(list((tmp_path / "reports").glob("migration_report-*.json"))) == 1
