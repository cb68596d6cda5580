"""Progress of a Dagster run on the console, fed by the run's own event log (no engine coupling).

Every planned asset and asset check of the run counts once, however many
partitions it materializes, so a run that succeeds ends at 100 %. Rows are
the source rows exported, counted once per table. On a terminal, one bar per
run (the phase and table it is at, rows, rows/s); elsewhere (CI, a pipe) one
plain line per phase when its last step is done. Both go to stderr, so
stdout keeps only the report (or its JSON).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable
from contextlib import contextmanager
from typing import TextIO

import dagster as dg
from tqdm import tqdm

from nova_pipeline.orchestration.defs import keys as K

EVENTS = {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION}
# Phases in run order, each with what its line says once its last step is done.
PHASES = {"snapshot": "snapshot of the source taken", "profile": "source profiled",
          "setup": "target schemas created", "export": "exported", "transform": "transformed", "load": "loaded",
          "keys": "keys and foreign keys added", "validate": "validated", "smoke": "smoke tests run",
          "report": "report written"}
Item = dg.AssetKey | dg.AssetCheckKey
COMMAND_STARTED = time.time()  # imported when a command begins its Dagster work (runs.py imports it)


def phase_of(item: Item) -> str:
    """The phase a planned asset or check belongs to (another asset is a phase of its own, named by its key)."""
    if isinstance(item, dg.AssetCheckKey):
        return "validate"
    fixed = {K.SNAPSHOT: "snapshot", K.PROFILE: "profile", K.PG_CONSTRAINTS: "keys", K.SMOKE_TESTS: "smoke",
             K.REPORT: "report"}
    if item in fixed:
        return fixed[item]
    path = item.path
    if path[0] == "staging":
        return "export" if path[1] == "raw" else "transform"
    if path[0] == "setup":
        return "setup"
    if path[0] in ("postgres", "mongo") and len(path) == 3:
        return "load"
    return path[-1]


def planned_items(job: dg.JobDefinition, assets: Iterable[dg.AssetKey] | None = None) -> list[Item]:
    """The assets a run of `job` materializes (`assets`, or all it can execute) and the checks on them."""
    keys = set(assets or job.asset_layer.executable_asset_keys)
    checks = [c for c in job.asset_layer.asset_graph.asset_check_keys if c.asset_key in keys]
    return [*sorted(keys, key=lambda k: k.to_user_string()), *checks]


def _done(phase: str) -> str:
    return PHASES.get(phase, phase.replace("_", " ") + " done")


class RunTracker:
    """Counts a run's completed assets and checks (each once) and the source rows it exported."""

    def __init__(self, planned: Iterable[Item]):
        self.planned = set(planned)
        self.by_phase: dict[str, set[Item]] = {}
        for item in self.planned:
            self.by_phase.setdefault(phase_of(item), set()).add(item)
        self.done: set[Item] = set()
        self.exported: dict[dg.AssetKey, int] = {}  # raw asset → source rows (a range run repeats it per partition)
        self.current: Item | None = None

    @property
    def total(self) -> int:
        return len(self.planned)

    @property
    def count(self) -> int:
        return len(self.done)

    @property
    def source_rows(self) -> int:
        return sum(self.exported.values())

    def observe(self, event: dg.DagsterEvent) -> list[str]:
        """Take one event; return the phases it completed."""
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            mat = event.event_specific_data.materialization
            item: Item = mat.asset_key
            if phase_of(item) == "export":
                self.exported[item] = int(getattr(mat.metadata.get("dagster/row_count"), "value", 0) or 0)
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            item = event.event_specific_data.asset_check_key
        else:
            return []
        if item not in self.planned or item in self.done:
            return []
        self.done.add(item)
        self.current = item
        phase = phase_of(item)
        return [phase] if self.by_phase[phase] <= self.done else []

    def describe(self) -> str:
        """The last completed step, for the bar: its phase and, for a table's step, the table."""
        if self.current is None:
            return "starting"
        phase = phase_of(self.current)
        table = self.current.path[-1] if isinstance(self.current, dg.AssetKey) and phase in (
            "export", "transform", "load") else None
        return f"{_done(phase)} {table}" if table else _done(phase)

    def phase_line(self, phase: str) -> str:
        """One line saying what a completed (or, at the end, unfinished) phase did."""
        items = self.by_phase[phase]
        finished = len(items & self.done)
        if phase in ("export", "transform", "load"):
            names = sorted(k.path[-1] for k in items & self.done)
            what = ", ".join(names) if 0 < len(names) <= 3 else f"{finished} table{'s' if finished != 1 else ''}"
            if phase == "export":
                what += f" ({self.source_rows:,} source rows)"
        elif phase == "validate":
            what = f"{finished} check{'s' if finished != 1 else ''}"
        else:
            what = ""
        line = _done(phase) + (f": {what}" if what else "")
        return line if finished == len(items) else f"{line} — {len(items) - finished} of {len(items)} not done"

    def unfinished_phases(self) -> list[str]:
        """Phases with steps not done, in run order."""
        order = list(PHASES)
        return sorted((p for p, items in self.by_phase.items() if not items <= self.done),
                      key=lambda p: order.index(p) if p in order else len(order))


class _Bar:
    """The terminal form: one tqdm bar per run."""

    def __init__(self, tracker: RunTracker, out: TextIO):
        self.tracker, self.started = tracker, time.monotonic()
        self.bar = tqdm(total=tracker.total, unit="step", desc="starting", file=out, dynamic_ncols=True)

    def update(self, completed: list[tuple[str, float]]) -> None:
        t = self.tracker
        self.bar.n = t.count
        self.bar.set_description_str(t.describe(), refresh=False)
        if t.source_rows:
            rate = t.source_rows / max(time.monotonic() - self.started, 1e-9)
            self.bar.set_postfix_str(f"{t.source_rows:,} source rows, {rate:,.0f} rows/s", refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        finished = self.tracker.count == self.tracker.total
        self.bar.set_description_str("done" if finished else f"stopped after {self.tracker.describe()}", refresh=False)
        self.bar.refresh()
        self.bar.close()


class _Lines:
    """The plain form: one line per completed phase, with the seconds since the command began its runs (a command
    may execute several runs)."""

    def __init__(self, tracker: RunTracker, out: TextIO):
        self.tracker, self.out = tracker, out

    def update(self, completed: list[tuple[str, float]]) -> None:
        for phase, at in completed:
            self._print(self.tracker.phase_line(phase), at)

    def close(self) -> None:
        for phase in self.tracker.unfinished_phases():
            self._print(self.tracker.phase_line(phase), time.time())

    def _print(self, line: str, at: float) -> None:
        print(f"[{max(at - COMMAND_STARTED, 0.0):6.1f} s] {line}", file=self.out, flush=True)


@contextmanager
def run_progress(instance: dg.DagsterInstance, run_id: str, planned: Iterable[Item], *, mode: str | None = None,
                 out: TextIO | None = None):
    """Show the progress of run `run_id` while it executes: `mode` "bar", "lines" or "off" (default: a bar
    when `out`, default stderr, is a terminal, else lines)."""
    out = out or sys.stderr
    mode = mode or ("bar" if out.isatty() else "lines")
    if mode == "off":
        yield
        return
    tracker = RunTracker(planned)
    view = (_Bar if mode == "bar" else _Lines)(tracker, out)
    stop = threading.Event()
    cursor = None

    def drain() -> None:
        nonlocal cursor
        conn = instance.get_records_for_run(run_id, cursor=cursor, of_type=EVENTS)
        cursor = conn.cursor
        completed = [(phase, rec.event_log_entry.timestamp) for rec in conn.records
                     for phase in tracker.observe(rec.event_log_entry.dagster_event)]
        if conn.records:
            view.update(completed)

    def poll() -> None:
        while not stop.wait(0.5):
            drain()

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        drain()  # the events logged since the last poll
        view.close()
