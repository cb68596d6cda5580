"""The demo's terminal summary of a migration report: totals, failed and warned checks, quarantine reasons,
where the MongoDB documents went, and the paths of the full report (which holds every table and check)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

SHOWN = 6  # lines per section; the rest is in the full report
WIDTH = 110


def summary_lines(report: dict[str, Any], report_files: list[Path]) -> list[str]:
    """A report's to_dict() as a few dozen lines, ending with the report files."""
    tot = report["totals"]
    lines = [f"Migration {report['status']}{_duration(report)} · run {report.get('run_id') or '-'}",
             f"Tables: {tot['tables']} ({tot['failed_tables']} failed) · {tot['source_rows']:,} source rows → "
             f"{tot['loaded_rows']:,} loaded, {tot['quarantined_rows']:,} quarantined"
             + ("" if all(t["reconciled"] for t in report["tables"].values()) else " · NOT RECONCILED")]
    failed_tables = [f"  {name}: {t['error'] or t['status']}" for name, t in report["tables"].items()
                     if t["status"] == "failed" or not t["reconciled"]]
    lines += _capped(failed_tables, "tables")
    checks = report.get("checks", [])
    lines.append(f"Checks: {len(checks)} run, {tot['checks_failed']} failed, {tot['checks_warned']} warned")
    lines += _capped(_check_groups(checks, "FAIL"), "failed checks")
    lines += _capped(_check_groups(checks, "warn"), "warnings")
    reasons = Counter()
    for name, t in report["tables"].items():
        for reason, n in t["top_reasons"].items():
            reasons[f"{name} · {reason}"] += n
    if reasons:
        lines.append(f"Quarantined rows by reason ({tot['quarantined_rows']:,} rows):")
        lines += _capped([f"  {n:>7,}  {what}" for what, n in reasons.most_common()], "reasons")
    lines += [n for n in report.get("notes", []) if n.startswith("MongoDB documents went to")]
    lines.append("Full report (every table and check):")
    lines += [f"  {p}" for p in report_files]
    return [_cut(line) for line in lines]


def _check_groups(checks: list[dict[str, Any]], level: str) -> list[str]:
    """Failed ("FAIL") or warned ("warn") checks, one line per check and detail, naming the tables (or
    partitions) it covers."""
    groups: dict[tuple[str, str], list[str]] = {}
    for c in checks:
        if not c.get("passed", False) and ("warn" if c.get("severity") == "WARN" else "FAIL") == level:
            check, detail = str(c.get("check")), str(c.get("detail", ""))
            detail = detail.removeprefix(f"{check}: ")
            groups.setdefault((check, detail), []).append(str(c.get("table")).rsplit("/", 1)[-1])
    out = []
    for (check, detail), tables in sorted(groups.items()):
        names = list(dict.fromkeys(tables))
        shown = ", ".join(names[:3]) + (f", +{len(names) - 3}" if len(names) > 3 else "")
        times = f" ×{len(tables)}" if len(tables) > 1 else ""
        out.append(f"  {level} {check}{times} ({shown}): {detail}")
    return out


def _capped(lines: list[str], what: str) -> list[str]:
    if len(lines) <= SHOWN:
        return lines
    return lines[:SHOWN - 1] + [f"  … and {len(lines) - SHOWN + 1} more {what} in the full report"]


def _duration(report: dict[str, Any]) -> str:
    try:
        seconds = (datetime.fromisoformat(report["finished_at"]) - datetime.fromisoformat(report["started_at"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return ""
    return f" in {seconds:.0f} s"


def _cut(line: str) -> str:
    line = " ".join(line.split()) if "\n" in line else line
    return line if len(line) <= WIDTH else line[:WIDTH - 1] + "…"
