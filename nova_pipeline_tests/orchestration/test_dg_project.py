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

from nova_pipeline.cli.ui import INSTALLED_WORKSPACE
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
    [installed] = yaml.safe_load(INSTALLED_WORKSPACE.read_text())["load_from"]
    assert (project["code_location_name"], local["python_module"]["location_name"],
            docker["grpc_server"]["location_name"], installed["python_module"]["location_name"]) == (CODE_LOCATION,) * 4
    assert project["code_location_target_module"] == local["python_module"]["module_name"]
    assert installed["python_module"]["module_name"] == local["python_module"]["module_name"]


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


def _readme_section(title: str) -> str:
    return (REPO / "README.md").read_text().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_readme_starts_the_ui_with_one_command():
    [block] = re.findall(r"```bash\n(.*?)```", _readme_section("Dagster UI"), flags=re.S)
    assert block.strip() == "nova-pipeline ui"


def test_readme_scaling_out_example_gives_the_code_location_another_executor(monkeypatch):
    section = _readme_section("Scaling out")
    [module] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    configs = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", section, flags=re.S)]
    assert {"job_namespace", "max_concurrent"} <= set(configs[0]["execution"]["config"])
    assert {"broker", "backend"} <= set(configs[1]["execution"]["config"])
    monkeypatch.setenv("NOVA_SPEC", str(SAMPLE_SPEC))
    stand_in = dg.multiprocess_executor.configured({}, name="k8s_stand_in")  # dagster-k8s is not installed here
    code = module.replace("from dagster_k8s import k8s_job_executor", "k8s_job_executor = stand_in")
    namespace = {"stand_in": stand_in}
    exec(compile(code, "README.md", "exec"), namespace)
    defs = namespace["defs"]
    assert defs.resolve_job_def("migrate").executor_def is stand_in
    built = build_definitions(load_spec(SAMPLE_SPEC), str(SAMPLE_SPEC))
    assert {s.name for s in defs.sensors} == {s.name for s in built.sensors}
