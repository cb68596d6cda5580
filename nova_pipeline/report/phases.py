"""The report's phase table: where a migration's time went, seconds per phase and rows/s where rows move."""

from __future__ import annotations

from typing import Any

# Phase → the tables whose source rows it moves or checks (None: every table); phases not listed move no rows.
_ROWS_OF = {"snapshot": None, "export": None, "transform": None, "load postgres": "postgres", "load mongo": "mongo",
            "constraints": "postgres", "validation postgres": "postgres", "validation mongo": "mongo"}


def phase_table(seconds: dict[str, float], tables: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the table, in the order of `seconds`, phases that took no time left out: phase, seconds, rows
    (source rows of the tables the phase handles; None when it moves none) and rows_per_s."""
    out = []
    for phase, sec in seconds.items():
        if sec <= 0:
            continue
        rows = None
        if phase in _ROWS_OF:
            target = _ROWS_OF[phase]
            rows = sum(t.source_rows for t in tables.values() if target is None or t.target == target)
        out.append({"phase": phase, "seconds": round(sec, 3), "rows": rows,
                    "rows_per_s": round(rows / sec, 1) if rows else None})
    return out


def markdown(phases: list[dict[str, Any]]) -> list[str]:
    """The `## Phases` section (empty when there are no phases)."""
    if not phases:
        return []
    lines = ["", "## Phases", "", "| phase | s | rows | rows/s |", "|---|---:|---:|---:|"]
    for p in phases:
        rows = "-" if p["rows"] is None else f"{p['rows']:,}"
        rate = "-" if p["rows_per_s"] is None else f"{p['rows_per_s']:,.0f}"
        lines.append(f"| {p['phase']} | {p['seconds']:,.2f} | {rows} | {rate} |")
    return lines
