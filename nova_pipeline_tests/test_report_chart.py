"""render_chart: a readable per-table PNG of a migration report."""

import pytest
from PIL import Image

from nova_pipeline.report_chart import QUARANTINED, render_chart


def _report(n_tables: int, quarantined: dict[str, int], failed: tuple[str, ...] = ()) -> dict:
    tables = {}
    for i in range(n_tables):
        name = f"table_{i:02d}"
        source = 10 ** (i % 6) + i
        q = quarantined.get(name, 0)
        tables[name] = {"target": "postgres", "source_rows": source, "loaded_rows": 0 if name in failed else source - q,
                        "quarantined_rows": q, "status": "failed" if name in failed else "loaded",
                        "seconds": 0.5, "rows_per_s": None if i == 3 else source / 0.5}
    return {"status": "failed" if failed else "succeeded", "tables": tables,
            "totals": {"loaded_rows": sum(t["loaded_rows"] for t in tables.values()),
                       "quarantined_rows": sum(quarantined.values()), "failed_tables": len(failed)}}


def _has_colour(img: Image.Image, hex_colour: str) -> bool:
    rgb = tuple(int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return any(c == rgb for _, c in img.getcolors(maxcolors=1 << 20))


def test_25_tables_with_quarantine_render_a_tall_detailed_png(tmp_path):
    out = render_chart(_report(25, {"table_07": 3}, failed=("table_11",)), tmp_path / "sub" / "chart.png")
    assert out == tmp_path / "sub" / "chart.png"
    img = Image.open(out).convert("RGB")
    width, height = img.size
    assert width == 1200 and height >= 25 * 30  # about 34 px per table row at 100 dpi
    assert len(img.getcolors(maxcolors=1 << 20)) > 50  # bars, text and anti-aliasing, not a blank canvas
    assert _has_colour(img, QUARANTINED)


def test_no_quarantine_no_orange_bars_and_small_report_is_shorter(tmp_path):
    img = Image.open(render_chart(_report(3, {}), tmp_path / "c.png")).convert("RGB")
    assert not _has_colour(img, QUARANTINED)
    assert img.size[1] < 400


def test_report_without_tables_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="no tables"):
        render_chart({"status": "succeeded", "tables": {}}, tmp_path / "c.png")


def test_the_same_chart_is_drawn_once_and_a_changed_report_redrawn(tmp_path):
    out = tmp_path / "chart.png"
    report = _report(4, {})
    render_chart(report, out)
    first = out.stat().st_mtime_ns
    render_chart(_report(4, {}), out)  # the same figures (the command line rewrites the asset's report)
    assert out.stat().st_mtime_ns == first
    render_chart(_report(4, {"table_02": 1}), out)
    assert out.stat().st_mtime_ns != first and _has_colour(Image.open(out).convert("RGB"), QUARANTINED)
