"""The migration report: per table rows, quarantine, timings and checks; JSON + Markdown.

Counts are read from where they are true, not from what a run remembers:
source rows from the raw Parquet footers, quarantined rows from the
quarantine Parquet, loaded rows from the target itself. Timings and check
results are passed in by the caller (the Dagster run or the CLI).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nova_pipeline.report import phases as report_phases
from nova_pipeline.report.report_chart import render_chart
from nova_pipeline.core.file_modes import private_dir
from nova_pipeline.core.staging import Staging

REPORT_JSON = "migration_report.json"
REPORT_MD = "migration_report.md"
REPORT_CHART = "migration_report.svg"


@dataclass
class TableReport:
    """One source table's outcome."""

    target: str
    target_name: str
    source_rows: int = 0
    loaded_rows: int = 0
    quarantined_rows: int = 0
    status: str = "loaded"
    error: str | None = None
    seconds: float | None = None
    rows_per_s: float | None = None
    top_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def reconciled(self) -> bool:
        return self.source_rows == self.loaded_rows + self.quarantined_rows


@dataclass
class MigrationReport:
    """A whole run's outcome (the `--report` JSON)."""

    status: str
    started_at: str
    finished_at: str
    run_id: str | None
    spec: str | None
    tables: dict[str, TableReport]
    checks: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    snapshot: dict[str, Any] = field(default_factory=dict)  # what was migrated: snapshot.verified_facts
    phases: list[dict[str, Any]] = field(default_factory=list)  # where the time went: phases.phase_table

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MigrationReport:
        """The report `to_dict` gave (its derived `reconciled` and `totals` are computed again)."""
        names = {f.name for f in fields(TableReport)}
        tables = {n: TableReport(**{k: v for k, v in t.items() if k in names}) for n, t in data["tables"].items()}
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name != "tables" and f.name in data},
                   tables=tables)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for name, t in self.tables.items():
            data["tables"][name]["reconciled"] = t.reconciled
        data["totals"] = {
            "tables": len(self.tables),
            "failed_tables": sum(t.status == "failed" for t in self.tables.values()),
            "source_rows": sum(t.source_rows for t in self.tables.values()),
            "loaded_rows": sum(t.loaded_rows for t in self.tables.values()),
            "quarantined_rows": sum(t.quarantined_rows for t in self.tables.values()),
            "checks_failed": sum(not c.get("passed", False) and c.get("severity") != "WARN" for c in self.checks),
            "checks_warned": sum(not c.get("passed", False) and c.get("severity") == "WARN" for c in self.checks),
        }
        return data

    def to_markdown(self) -> str:
        d = self.to_dict()
        tot = d["totals"]
        lines = [
            f"# Migration report — {self.status}",
            "",
            f"Run `{self.run_id or '-'}` · {self.started_at} → {self.finished_at} · spec `{self.spec or '-'}`",
            "",
            *([snapshot_line(self.snapshot), ""] if self.snapshot else []),
            f"**{tot['tables']} tables**, {tot['source_rows']:,} source rows, {tot['loaded_rows']:,} loaded, "
            f"{tot['quarantined_rows']:,} quarantined, {tot['failed_tables']} failed tables, {tot['checks_failed']} failed checks, "
            f"{tot['checks_warned']} warnings.",
            "",
            "| table | target | source rows | loaded | quarantined | s | rows/s | status | top quarantine reasons |",
            "|---|---|---:|---:|---:|---:|---:|---|---|",
        ]
        for name, t in self.tables.items():
            reasons = "; ".join(f"{r} ({n})" for r, n in list(t.top_reasons.items())[:3])
            status = t.status if t.reconciled or t.status == "failed" else f"{t.status} (NOT RECONCILED)"
            if t.error:
                status += f": {t.error}"
            lines.append(
                f"| {name} | {t.target}:{t.target_name} | {t.source_rows:,} | {t.loaded_rows:,} | {t.quarantined_rows:,} | "
                f"{_num(t.seconds, 2)} | {_num(t.rows_per_s, 0)} | {status} | {reasons} |")
        if self.checks:
            lines += ["", "## Checks", "", "| table | check | result | detail |", "|---|---|---|---|"]
            for c in self.checks:
                mark = "pass" if c.get("passed") else ("warn" if c.get("severity") == "WARN" else "**FAIL**")
                lines.append(f"| {c.get('table')} | {c.get('check')} | {mark} | {str(c.get('detail', '')).replace('|', '/')} |")
        lines += report_phases.markdown(self.phases)
        if self.notes:
            lines += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def snapshot_line(facts: dict[str, Any]) -> str:
    """What was migrated, in words: source, snapshot time, the copy's sha256, the source's WAL frame or change counter."""
    state = facts.get("source_state") or {}
    if state.get("wal_frames") is not None:
        where = f", WAL frame {state['wal_frames']:,}"
    elif "change_counter" in state:
        where = f", change counter {state['change_counter']:,}"
    else:
        where = ""
    return (f"Source `{facts.get('source')}` as of {facts.get('taken_at') or '-'}{where} · snapshot sha256 "
            f"`{facts.get('sha256') or '-'}`" + (f" · **{facts['problem']}**" if facts.get("problem") else ""))


def _num(v: float | None, digits: int) -> str:
    return "-" if v is None else f"{v:,.{digits}f}"


def quarantine_reasons(staging: Staging, table: str, top: int = 5) -> dict[str, int]:
    """The most frequent quarantine reasons of a table ("column: reason" → rows)."""
    counts: dict[str, int] = {}
    for batch in staging.read_batches("quarantine", table, columns=["column", "reason"]):
        for col, reason in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist()):
            key = f"{col}: {reason}"
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1])[:top])


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def write_report(report: MigrationReport, reports_dir: Path, extra_json: Path | None = None) -> Path:
    """Write JSON + Markdown into reports_dir (a timestamped copy and the latest); returns the JSON path."""
    private_dir(reports_dir)  # reports quote quarantined values
    as_dict = report.to_dict()
    data = json.dumps(as_dict, indent=2, default=str)
    render_chart(as_dict, reports_dir / REPORT_CHART)
    md = report.to_markdown() + f"\n![Per table: rows loaded and quarantined, rows/s]({REPORT_CHART})\n"
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    (reports_dir / f"migration_report-{stamp}.json").write_text(data)
    (reports_dir / REPORT_JSON).write_text(data)
    (reports_dir / REPORT_MD).write_text(md)
    if extra_json is not None:
        extra_json.parent.mkdir(parents=True, exist_ok=True)
        extra_json.write_text(data)
    return reports_dir / REPORT_JSON


def count_loaded(spec, table: str, pg_conn, mongo_db) -> int:
    """Rows (documents, embedded elements) of a source table now in its target."""
    from psycopg import sql

    from nova_pipeline.core import identifiers

    t = spec.tables[table]
    if t.target == "postgres":
        if pg_conn is None:
            return 0
        schema, name = identifiers.pg_table(spec, table)
        exists = pg_conn.execute("SELECT to_regclass(%s)", [sql.Identifier(schema, name).as_string(pg_conn)]).fetchone()[0]
        if exists is None:
            return 0
        return pg_conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(schema, name))).fetchone()[0]
    if mongo_db is None:
        return 0
    for parent, pt in spec.table_items("mongo"):
        for e in pt.embed:
            if e.table == table:
                coll = mongo_db[identifiers.mongo_collection(spec, parent)]
                if e.mode == "document":
                    return coll.count_documents({e.as_: {"$type": "object"}})
                agg = list(coll.aggregate([{"$project": {"n": {"$size": {"$ifNull": [f"${e.as_}", []]}}}},
                                           {"$group": {"_id": None, "n": {"$sum": "$n"}}}]))
                return agg[0]["n"] if agg else 0
    return mongo_db[identifiers.mongo_collection(spec, table)].count_documents({})


def settle_table(tr: TableReport, seconds: float | None, error: str | None) -> None:
    """A counted table's timing and status: failed with `error`, or when its rows do not reconcile, else loaded."""
    tr.seconds, tr.rows_per_s = seconds, round(tr.source_rows / seconds, 1) if seconds else None
    tr.status, tr.error = "loaded", None
    if error is not None:
        tr.status, tr.error = "failed", error
    elif not tr.reconciled:
        tr.status = "failed"
        tr.error = (f"not reconciled: {tr.source_rows} source rows != {tr.loaded_rows} loaded "
                    f"+ {tr.quarantined_rows} quarantined")


def build_report(spec, *, staging: Staging, source_rows: dict[str, int], pg_conn, mongo_db, status: str,
                 run_id: str | None, started_at: str, seconds: dict[str, float], errors: dict[str, str],
                 checks: list[dict[str, Any]], notes: list[str], snapshot: dict[str, Any] | None = None) -> MigrationReport:
    """Reconcile every table from the snapshot counts, the quarantine and the targets."""
    from nova_pipeline.core import identifiers

    tables: dict[str, TableReport] = {}
    for name, t in spec.table_items():
        target_name = (".".join(identifiers.pg_table(spec, name)) if t.target == "postgres"
                       else identifiers.mongo_collection(spec, name))
        quarantined = staging.row_count("quarantine", name)
        tr = TableReport(target=t.target, target_name=target_name, source_rows=source_rows.get(name, 0),
                         loaded_rows=count_loaded(spec, name, pg_conn, mongo_db), quarantined_rows=quarantined,
                         top_reasons=quarantine_reasons(staging, name) if quarantined else {})
        settle_table(tr, seconds.get(name), errors.get(name))
        tables[name] = tr
    return MigrationReport(status=status, started_at=started_at, finished_at=now_iso(), run_id=run_id,
                           spec=spec.spec_path, tables=tables, checks=checks, notes=notes, snapshot=snapshot or {})
