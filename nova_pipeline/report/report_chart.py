"""A per-table picture of a migration report: rows loaded and quarantined, throughput, quarantined share.

One horizontal bar row per table, so table names stay readable with dozens
of tables; the row axis turns logarithmic when table sizes differ by more
than 100x, otherwise small tables would be invisible next to telemetry. The
picture is SVG written as text: browsers, the Dagster UI and Markdown viewers
show it, and no plotting library is imported at the end of every migration
(docs/performance.md).
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path
from typing import Any

LOADED, QUARANTINED, RATE, FAILED = "#2f6db5", "#e0702b", "#4b9a5a", "#c62828"
WIDTH, ROW, TOP, BOTTOM = 1200, 34, 56, 46  # px: canvas width, height per table, title band, axis band
_NAMES, _GAP = 190, 40  # px: table-name column, space between the two panels
_ROWS_W = (WIDTH - _NAMES - _GAP - 20) * 3 // 5  # the rows panel; the rows/s panel takes the rest


def render_chart(report_dict: dict[str, Any], out_svg: Path) -> Path:
    """Write the report's per-table chart (report JSON as produced by MigrationReport.to_dict) as SVG."""
    tables = report_dict.get("tables") or {}
    if not tables:
        raise ValueError("report has no tables to chart")
    names = list(tables)
    rows = [tables[n] for n in names]
    loaded = [int(r.get("loaded_rows") or 0) for r in rows]
    quarantined = [int(r.get("quarantined_rows") or 0) for r in rows]
    rates = [r.get("rows_per_s") for r in rows]
    any_quarantined = any(quarantined)
    positive = [v for v in loaded + quarantined if v > 0]
    log = bool(positive) and max(positive) / min(positive) > 100
    top = max(positive or [1])
    rows_x = _Axis(_NAMES, _ROWS_W, (0.5, top * 8) if log else (0.0, top * 1.35), log)
    rate_left = _NAMES + _ROWS_W + _GAP
    rate_x = _Axis(rate_left, WIDTH - 20 - rate_left, (0.0, max([v for v in rates if v] or [1]) * 1.25), False)
    height = TOP + ROW * len(names) + BOTTOM
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Arial, sans-serif" font-size="12">',
           f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
           _text(WIDTH / 2, 24, _title(report_dict, len(names), loaded, quarantined), size=15, anchor="middle")]
    bottom = TOP + ROW * len(names)
    out += rows_x.grid(TOP, bottom, "rows" + (" (log scale)" if log else ""))
    out += rate_x.grid(TOP, bottom, "rows/s (export + transform + load)")
    for i, (name, r) in enumerate(zip(names, rows)):
        y = TOP + ROW * i
        failed = r.get("status") == "failed"
        out.append(_text(_NAMES - 8, y + ROW / 2 + 4, name, anchor="end", color=FAILED if failed else "black",
                         bold=failed))
        q, source = quarantined[i], int(r.get("source_rows") or 0)
        if any_quarantined:
            out.append(rows_x.bar(y + 4, ROW / 2 - 5, loaded[i], LOADED))
            out.append(rows_x.bar(y + ROW / 2 + 1, ROW / 2 - 5, q, QUARANTINED))
        else:
            out.append(rows_x.bar(y + 6, ROW - 12, loaded[i], LOADED))
        if q:
            out.append(_text(rows_x.x(max(loaded[i], q, 1)) + 4, y + ROW / 2 + 4,
                             f"{q:,} quarantined ({_share(q, source or loaded[i] + q)})", size=11, color=QUARANTINED))
        elif not loaded[i] and source:
            out.append(_text(rows_x.x(1) + 4, y + ROW / 2 + 4, f"0 of {source:,} loaded", size=11, color=FAILED))
        out.append(rate_x.bar(y + 6, ROW - 12, rates[i] or 0, RATE))
        out.append(_text(rate_x.x(rates[i] or 0) + 4, y + ROW / 2 + 4,
                         "n/a" if rates[i] is None else f"{rates[i]:,.0f}", size=11,
                         color="#555" if rates[i] is None else "black"))
    legend = ([("loaded", LOADED), ("quarantined", QUARANTINED)] if any_quarantined
              else [("loaded (none quarantined)", LOADED)])
    x = _NAMES + _ROWS_W - 120
    for k, (label, colour) in enumerate(legend):
        out += [f'<rect x="{x}" y="{TOP - 16 + 14 * k}" width="10" height="10" fill="{colour}"/>',
                _text(x + 14, TOP - 7 + 14 * k, label, size=11)]
    out.append("</svg>")
    out_svg = Path(out_svg)
    out_svg.parent.mkdir(parents=True, exist_ok=True)
    out_svg.write_text("\n".join(out) + "\n")
    return out_svg


class _Axis:
    """Value → x pixel of one panel, linear from 0 or logarithmic from 0.5 (so a single row still shows)."""

    def __init__(self, left: float, width: float, limits: tuple[float, float], log: bool):
        self.left, self.width, self.log = left, width, log
        self.lo, self.hi = limits

    def x(self, v: float) -> float:
        if self.log:
            share = math.log10(max(v, self.lo) / self.lo) / math.log10(self.hi / self.lo)
        else:
            share = (v - self.lo) / (self.hi - self.lo)
        return self.left + self.width * min(max(share, 0.0), 1.0)

    def bar(self, y: float, h: float, v: float, colour: str) -> str:
        w = self.x(v) - self.left if v > 0 else 0
        return f'<rect x="{self.left}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" fill="{colour}"/>'

    def ticks(self) -> list[float]:
        if self.log:
            return [10.0 ** k for k in range(0, math.floor(math.log10(self.hi)) + 1)]
        step = _nice_step(self.hi / 4)
        return [step * k for k in range(0, int(self.hi / step) + 1)]

    def grid(self, top: float, bottom: float, label: str) -> list[str]:
        out = [f'<line x1="{self.left}" y1="{bottom}" x2="{self.left + self.width}" y2="{bottom}" stroke="#333"/>']
        for v in self.ticks():
            x = self.x(v)
            out += [f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#ccc" stroke-width="0.6"/>',
                    _text(x, bottom + 15, _tick_label(v, self.log), size=10, anchor="middle")]
        out.append(_text(self.left + self.width / 2, bottom + 34, label, anchor="middle"))
        return out


def _nice_step(raw: float) -> float:
    """1, 2 or 5 times a power of ten, at least `raw`."""
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _tick_label(v: float, log: bool) -> str:
    if log and v >= 1000:
        return f"1e{round(math.log10(v))}"
    return f"{v:,.0f}"


def _title(report: dict[str, Any], n: int, loaded: list[int], quarantined: list[int]) -> str:
    totals = report.get("totals") or {}
    failed = totals.get("failed_tables")
    return (f"Migration {report.get('status', '')}: {n} tables, {totals.get('loaded_rows', sum(loaded)):,} rows loaded, "
            f"{totals.get('quarantined_rows', sum(quarantined)):,} quarantined"
            + (f", {failed} tables failed (red)" if failed else ""))


def _text(x: float, y: float, s: str, *, size: int = 12, anchor: str = "start", color: str = "black",
          bold: bool = False) -> str:
    weight = ' font-weight="bold"' if bold else ""
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" fill="{color}"{weight}>'
            f"{escape(s)}</text>")


def _share(part: int, whole: int) -> str:
    share = part / whole
    return f"{share:.1%}" if share >= 0.001 else f"{share:.3%}"
