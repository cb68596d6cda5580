"""Issue 19 item 6: `nova-pipeline demo` prints a short summary and the paths of the full report, not the report."""

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from nova_pipeline.cli.main import main
from nova_pipeline.demo.summary import summary_lines

SPEC = Path(__file__).resolve().parents[2] / "data" / "nova.spec.yaml"


def test_demo_prints_a_summary_and_the_report_paths(tmp_path, pg_url):
    spec = tmp_path / "nova.spec.yaml"
    shutil.copy(SPEC, spec)
    res = CliRunner().invoke(main, ["demo", "--scale", "0.05", "--spec", str(spec), "--postgres-url", pg_url])
    assert res.exit_code in (0, 1), res.output
    lines = res.stdout.strip().splitlines()
    assert len(lines) <= 40, res.stdout
    assert lines[0].startswith("Migration ") and any(line.startswith("Checks: ") for line in lines)
    assert any("in-process" in line or "mongomock" in line for line in lines)  # says where the documents went
    paths = [Path(line.strip()) for line in lines[lines.index("Full report (every table and check):") + 1:]]
    assert [p.name for p in paths] == ["migration_report.md", "migration_report.json", "migration_report.svg"]
    assert all(p.is_file() for p in paths)
    report = json.loads(paths[1].read_text())
    assert f"{report['totals']['source_rows']:,} source rows" in res.stdout
    assert "| table |" not in res.stdout  # not the Markdown report


def test_summary_groups_repeated_checks_and_caps_each_section():
    checks = [{"table": "postgres/core/drone_telemetry", "check": "row_count", "passed": False, "severity": "WARN",
               "detail": "row_count: partition day"} for _ in range(35)]
    checks += [{"table": f"t{i}", "check": "pk_unique", "passed": False, "severity": "ERROR", "detail": f"{i} dupes"}
               for i in range(12)]
    checks += [{"table": f"mongo/logs/c{i}", "check": "validator", "passed": False, "severity": "WARN",
                "detail": "not verified"} for i in range(5)]
    checks += [{"table": "users", "check": "row_count", "passed": True}] * 100
    tables = {f"t{i}": {"status": "loaded", "error": None, "reconciled": True,
                        "top_reasons": {f"c{j}: invalid date": j + 1 for j in range(3)}} for i in range(10)}
    report = {"status": "failed", "run_id": "r1", "started_at": "2026-01-01T00:00:00+00:00",
              "finished_at": "2026-01-01T00:00:20+00:00", "tables": tables, "checks": checks,
              "notes": ["MongoDB documents went to mongomock (in-process double).", "view v not carried over"],
              "totals": {"tables": 10, "failed_tables": 0, "source_rows": 1000, "loaded_rows": 940,
                         "quarantined_rows": 60, "checks_failed": 12, "checks_warned": 35}}
    lines = summary_lines(report, [Path("r.md"), Path("r.json"), Path("r.svg")])
    assert lines[0] == "Migration failed in 20 s · run r1"
    assert "Checks: 152 run, 12 failed, 35 warned" in lines
    assert "  warn row_count ×35 (drone_telemetry): partition day" in lines
    assert "  warn validator ×5 (c0, c1, c2, +2): not verified" in lines
    assert lines.index("  FAIL pk_unique (t0): 0 dupes") < lines.index("  … and 7 more failed checks in the full report")
    assert "  … and 25 more reasons in the full report" in lines
    assert "view v not carried over" not in lines and lines[-3:] == ["  r.md", "  r.json", "  r.svg"]
    assert len(lines) <= 40
