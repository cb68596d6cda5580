"""Seconds per phase of a migration's Dagster runs, from their step events and the `seconds` of materializations.

A step that materializes assets with `seconds` metadata is split by them
(export, transform, load; a clean table's `facts_seconds`, its source facts
for the checks, count as validation); the rest of its time, and run time
outside any step, is Dagster overhead. In a partition range run the transform works
beside the export and the load, so that step's phases add up to more than
its wall time. `migrate` takes the snapshot beside its start-up, before the
run: the snapshot counts its own seconds when they exceed its step's.
"""

from __future__ import annotations

import dagster as dg

PHASES = ("snapshot", "setup", "export", "transform", "load postgres", "load mongo", "constraints",
          "validation postgres", "validation mongo", "report", "dagster overhead")
_STAGING_PHASE = {"raw": "export", "clean": "transform"}


def run_phases(instance: dg.DagsterInstance, run_ids: list[str]) -> dict[str, float]:
    """Seconds per phase (every name of PHASES) summed over the runs `run_ids`."""
    phases = dict.fromkeys(PHASES, 0.0)
    for run_id in run_ids:
        _add_run(instance, run_id, phases)
    return phases


def run_wall(instance: dg.DagsterInstance, run_id: str) -> float:
    """Seconds from a run's start to its end (0 when it has not both)."""
    stamps = [rec.timestamp for rec in instance.all_logs(run_id, of_type={
        dg.DagsterEventType.RUN_START, dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE})]
    return max(stamps) - min(stamps) if stamps else 0.0


def _add_run(instance: dg.DagsterInstance, run_id: str, phases: dict[str, float]) -> None:
    starts, steps, assets = {}, {}, {}
    run_start = run_end = snapshot = None
    for rec in instance.all_logs(run_id):
        ev = rec.dagster_event
        if ev is None:
            continue
        if ev.event_type == dg.DagsterEventType.RUN_START:
            run_start = rec.timestamp
        elif ev.event_type in (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE):
            run_end = rec.timestamp
        elif ev.event_type == dg.DagsterEventType.STEP_START:
            starts[ev.step_key] = rec.timestamp
        elif ev.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            if ev.step_key in starts:
                steps[ev.step_key] = rec.timestamp - starts[ev.step_key]
        elif ev.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            mat = ev.event_specific_data.materialization
            seconds = mat.metadata.get("seconds")
            if seconds is None:
                continue
            if mat.asset_key.path == ["source", "snapshot"]:
                snapshot = float(seconds.value)
            elif mat.asset_key.path[0] in ("staging", "postgres", "mongo"):
                # A range run reports the whole range's seconds on every partition: count it once.
                key = (ev.step_key, tuple(mat.asset_key.path))
                assets[key] = max(assets.get(key, 0.0), float(seconds.value))
                if facts := mat.metadata.get("facts_seconds"):
                    key = (ev.step_key, ("validation", *mat.asset_key.path))
                    assets[key] = max(assets.get(key, 0.0), float(facts.value))
    busy = 0.0
    for step, seconds in steps.items():
        busy += seconds
        inner = 0.0
        for (s_key, path), sec in assets.items():
            if s_key == step:
                phases[_asset_phase(path)] += sec
                inner += sec
        if inner:
            phases["dagster overhead"] += max(seconds - inner, 0.0)
        elif step == "source__snapshot" and snapshot is not None:
            phases["snapshot"] += max(snapshot, seconds)
        else:
            phases[_step_phase(step)] += seconds
    if run_start and run_end:
        phases["dagster overhead"] += max(run_end - run_start - busy, 0.0)


def _asset_phase(path: tuple[str, ...]) -> str:
    if path[0] == "validation":
        return "validation postgres"
    if path[0] == "staging":
        return _STAGING_PHASE.get(path[1], "export")
    if path == ("postgres", "constraints"):
        return "constraints"
    return "load postgres" if path[0] == "postgres" else "load mongo"


def _step_phase(step: str) -> str:
    if step.startswith("source__"):
        return "snapshot"
    if step.startswith("setup__"):
        return "setup"
    if step == "postgres__constraints":
        return "constraints"
    if step.startswith("validate_mongo"):
        return "validation mongo"
    if step.startswith("validat") or "smoke" in step or "check" in step:
        return "validation postgres"
    if step.startswith("reports__"):
        return "report"
    return "dagster overhead"
