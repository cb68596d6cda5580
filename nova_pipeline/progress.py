"""A progress bar for a Dagster run, fed by the run's own event log (no engine coupling)."""

from __future__ import annotations

import sys
import threading
from contextlib import contextmanager

import dagster as dg
from tqdm import tqdm

_DONE = {dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION,
         dg.DagsterEventType.STEP_FAILURE}


@contextmanager
def run_progress(instance: dg.DagsterInstance, run_id: str, total: int, *, enabled: bool | None = None):
    """Show assets and checks completed, rows moved and rows/s while the run `run_id` executes."""
    enabled = sys.stderr.isatty() if enabled is None else enabled
    if not enabled:
        yield
        return
    stop = threading.Event()
    bar = tqdm(total=total, unit="step", desc="migrating", file=sys.stderr, dynamic_ncols=True)

    def poll():
        cursor, rows = None, 0
        while not stop.wait(0.5):
            conn = instance.get_records_for_run(run_id, cursor=cursor, of_type=_DONE)
            cursor = conn.cursor
            for rec in conn.records:
                ev = rec.event_log_entry.dagster_event
                if ev.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
                    mat = ev.event_specific_data.materialization
                    rows += int(getattr(mat.metadata.get("dagster/row_count"), "value", 0) or 0)
                    bar.set_postfix_str(f"{mat.asset_key.to_user_string()} · {rows:,} rows", refresh=False)
                bar.update(1)

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.close()
