"""A per-table picture of a migration report: rows loaded and quarantined, throughput, quarantined share.

One horizontal bar row per table, so table names stay readable with dozens
of tables; the row axis turns logarithmic when table sizes differ by more
than 100x, otherwise small tables would be invisible next to telemetry.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402

LOADED, QUARANTINED, RATE, FAILED = "#2f6db5", "#e0702b", "#4b9a5a", "#c62828"
_SHOWN = ("source_rows", "loaded_rows", "quarantined_rows", "rows_per_s", "status")
_DRAWN: dict[Path, tuple[str, int]] = {}  # png → (what it shows, its mtime): a migration's report asset and
# its command line write the same report; the chart is drawn once (≈0.4 s)


def render_chart(report_dict: dict[str, Any], out_png: Path) -> Path:
    """Render the report's per-table chart (report JSON as produced by MigrationReport.to_dict) to a PNG."""
    tables = report_dict.get("tables") or {}
    if not tables:
        raise ValueError("report has no tables to chart")
    out_png = Path(out_png)
    shown = json.dumps([report_dict.get("status"), report_dict.get("totals"),
                        {n: [t.get(k) for k in _SHOWN] for n, t in tables.items()}], default=str)
    drawn = _DRAWN.get(out_png.resolve())
    if drawn is not None and out_png.exists() and drawn == (shown, out_png.stat().st_mtime_ns):
        return out_png
    names = list(tables)[::-1]  # first table on top
    rows = [tables[n] for n in names]
    loaded = [int(r.get("loaded_rows") or 0) for r in rows]
    quarantined = [int(r.get("quarantined_rows") or 0) for r in rows]
    rates = [r.get("rows_per_s") for r in rows]
    positive = [v for v in loaded + quarantined if v > 0]
    log = bool(positive) and max(positive) / min(positive) > 100

    fig, (ax_rows, ax_rate) = plt.subplots(1, 2, sharey=True, figsize=(12, 1.6 + 0.34 * len(names)),
                                           gridspec_kw={"width_ratios": [3, 2]})
    y = range(len(names))
    if any(quarantined):
        ax_rows.barh([i + 0.2 for i in y], loaded, height=0.4, color=LOADED, label="loaded")
        ax_rows.barh([i - 0.2 for i in y], quarantined, height=0.4, color=QUARANTINED, label="quarantined")
    else:
        ax_rows.barh(list(y), loaded, height=0.6, color=LOADED, label="loaded (none quarantined)")
    if log:
        ax_rows.set_xscale("log")
        ax_rows.set_xlim(0.5, max(positive) * 8)  # from 0.5 so a single quarantined row still shows
    else:
        ax_rows.set_xlim(0, max(positive or [1]) * 1.35)
    for i, (r, q) in enumerate(zip(rows, quarantined)):
        source = int(r.get("source_rows") or 0)
        if q:
            ax_rows.annotate(f"{q:,} quarantined ({_share(q, source or loaded[i] + q)})", (max(loaded[i], q, 1), i),
                             xytext=(4, 0), textcoords="offset points", va="center", fontsize=8, color=QUARANTINED)
        elif not loaded[i] and source:
            ax_rows.annotate(f"0 of {source:,} loaded", (1, i), xytext=(4, 0), textcoords="offset points",
                             va="center", fontsize=8, color=FAILED)
    ax_rows.set_ylim(-0.6, len(names) - 0.4)
    ax_rows.set_yticks(list(y), names, fontsize=9)
    for label, r in zip(ax_rows.get_yticklabels(), rows):
        if r.get("status") == "failed":
            label.set_color(FAILED)
            label.set_fontweight("bold")
    ax_rows.set_xlabel("rows" + (" (log scale)" if log else ""))
    ax_rows.legend(loc="best", fontsize=8)
    ax_rows.grid(axis="x", alpha=0.3)

    ax_rate.barh(list(y), [v or 0 for v in rates], height=0.6, color=RATE)
    for i, v in enumerate(rates):
        ax_rate.annotate("n/a" if v is None else f"{v:,.0f}", (v or 0, i), xytext=(4, 0), textcoords="offset points",
                         va="center", fontsize=8, color="#555" if v is None else "black")
    ax_rate.set_xlim(0, max([v for v in rates if v] or [1]) * 1.25)
    ax_rate.xaxis.set_major_locator(MaxNLocator(4))
    ax_rate.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax_rate.set_xlabel("rows/s (export + transform + load)")
    ax_rate.grid(axis="x", alpha=0.3)

    totals = report_dict.get("totals") or {}
    fig.suptitle(f"Migration {report_dict.get('status', '')}: {len(names)} tables, "
                 f"{totals.get('loaded_rows', sum(loaded)):,} rows loaded, "
                 f"{totals.get('quarantined_rows', sum(quarantined)):,} quarantined"
                 + (f", {totals['failed_tables']} tables failed (red)" if totals.get("failed_tables") else ""),
                 fontsize=11)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    _DRAWN[out_png.resolve()] = shown, out_png.stat().st_mtime_ns
    return out_png


def _share(part: int, whole: int) -> str:
    share = part / whole
    return f"{share:.1%}" if share >= 0.001 else f"{share:.3%}"
