"""render_chart: a readable per-table SVG of a migration report."""

import xml.etree.ElementTree as ET

import pytest

from nova_pipeline.report.report_chart import _NAMES, FAILED, LOADED, QUARANTINED, ROW, render_chart

SVG = "{http://www.w3.org/2000/svg}"


def _report(n_tables: int, quarantined: dict[str, int], failed: tuple[str, ...] = (), spread: int = 6) -> dict:
    tables = {}
    for i in range(n_tables):
        name = f"table_{i:02d}"
        source = 10 ** (i % spread) + i
        q = quarantined.get(name, 0)
        tables[name] = {"target": "postgres", "source_rows": source, "loaded_rows": 0 if name in failed else source - q,
                        "quarantined_rows": q, "status": "failed" if name in failed else "loaded",
                        "seconds": 0.5, "rows_per_s": None if i == 3 else source / 0.5}
    return {"status": "failed" if failed else "succeeded", "tables": tables,
            "totals": {"loaded_rows": sum(t["loaded_rows"] for t in tables.values()),
                       "quarantined_rows": sum(quarantined.values()), "failed_tables": len(failed)}}


def _svg(path):
    return ET.parse(path).getroot()


def _texts(root) -> dict[str, ET.Element]:
    return {t.text: t for t in root.iter(f"{SVG}text")}


def _bar_widths(root, colour: str) -> list[float]:
    """Widths of the bars of the rows panel in `colour` (its bars start at the name column's edge)."""
    return [float(r.get("width")) for r in root.iter(f"{SVG}rect")
            if r.get("fill") == colour and float(r.get("x")) == _NAMES]


def test_25_tables_with_quarantine_and_a_failure_render_a_tall_detailed_chart(tmp_path):
    out = render_chart(_report(25, {"table_07": 3}, failed=("table_11",)), tmp_path / "sub" / "chart.svg")
    assert out == tmp_path / "sub" / "chart.svg"
    root = _svg(out)
    assert int(root.get("width")) == 1200 and int(root.get("height")) >= 25 * ROW
    texts = _texts(root)
    assert all(f"table_{i:02d}" in texts for i in range(25))  # every table named, top to bottom
    assert texts["table_11"].get("fill") == FAILED and texts["table_11"].get("font-weight") == "bold"
    assert texts["table_10"].get("fill") == "black"
    assert "3 quarantined (0.0%)" not in texts and any(t.startswith("3 quarantined") for t in texts)
    assert any(t.startswith("0 of ") and t.endswith(" loaded") for t in texts)  # the failed table's row says so
    assert "rows (log scale)" in texts  # 1 to 100,000 rows: logarithmic
    assert texts["n/a"] is not None  # a table without a rate
    assert sum(w > 0 for w in _bar_widths(root, QUARANTINED)) == 1
    assert "Migration failed: 25 tables" in next(t for t in texts if t.startswith("Migration"))


def test_bars_grow_with_rows_and_without_quarantine_there_is_no_orange(tmp_path):
    root = _svg(render_chart(_report(3, {}, spread=2), tmp_path / "c.svg"))
    widths = _bar_widths(root, LOADED)[:3]  # 1, 11 and 2 rows: linear scale, proportional bars
    assert widths[1] > widths[2] > widths[0] > 0
    assert abs(widths[1] / widths[0] - 11) < 0.01
    assert not _bar_widths(root, QUARANTINED)
    assert "rows" in _texts(root) and int(root.get("height")) < 400


def test_names_are_escaped(tmp_path):
    report = _report(2, {})
    report["tables"]["a<b&c"] = report["tables"].pop("table_00")
    root = _svg(render_chart(report, tmp_path / "c.svg"))  # parses: the name did not break the XML
    assert "a<b&c" in _texts(root)


def test_report_without_tables_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="no tables"):
        render_chart({"status": "succeeded", "tables": {}}, tmp_path / "c.svg")
