"""Dagster 1.13's project conventions (issue 19 item 10): `dg check defs` loads the code location that
pyproject.toml's [tool.dg] names, and docs/ui.md lists every schedule and sensor it defines."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import tomllib
from pathlib import Path

import dagster as dg
import pytest
import yaml

from nova_pipeline.core.spec import load_spec
from nova_pipeline.orchestration.code_location import CODE_LOCATION
from nova_pipeline.orchestration.dagster_storage import INSTANCE_YAML
from nova_pipeline.orchestration.defs.build import build_definitions

REPO = Path(__file__).resolve().parents[2]
SAMPLE_SPEC = REPO / "data" / "nova.spec.yaml"


@pytest.mark.skipif(shutil.which("dg") is None, reason="dagster-dg-cli not installed")
def test_dg_check_defs_loads_the_code_location(tmp_path):
    (tmp_path / "dagster.yaml").write_text(INSTANCE_YAML)
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "NOVA_SPEC": str(SAMPLE_SPEC), "DAGSTER_DISABLE_TELEMETRY": "1"}
    started = time.monotonic()
    done = subprocess.run(["dg", "check", "defs"], cwd=REPO, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "All definitions loaded successfully" in done.stdout + done.stderr
    assert time.monotonic() - started < 120


def test_one_code_location_name_everywhere():
    """Runs the CLI records are filed under CODE_LOCATION: it must be the name the UI serves the location by."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["dg"]["project"]
    [local] = yaml.safe_load((REPO / "workspace.yaml").read_text())["load_from"]
    [docker] = yaml.safe_load((REPO / "deploy" / "workspace.yaml").read_text())["load_from"]
    assert (project["code_location_name"], local["python_module"]["location_name"],
            docker["grpc_server"]["location_name"]) == (CODE_LOCATION,) * 3
    assert project["code_location_target_module"] == local["python_module"]["module_name"]


def _documented() -> dict[str, str]:
    """name → default ("on"/"off") from the table in docs/ui.md's "Schedules and sensors" section."""
    section = (REPO / "docs" / "ui.md").read_text().split("## 5. Schedules and sensors", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9_]+)` \| [^|]+ \| (on|off) \|", section, flags=re.M)
    return dict(rows)


def test_docs_ui_lists_every_schedule_and_sensor_with_its_default():
    defs = build_definitions(load_spec(SAMPLE_SPEC), str(SAMPLE_SPEC))
    running = (dg.DefaultScheduleStatus.RUNNING, dg.DefaultSensorStatus.RUNNING)
    defined = {d.name: "on" if d.default_status in running else "off" for d in [*defs.schedules, *defs.sensors]}
    assert _documented() == defined
