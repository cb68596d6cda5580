"""`nova-pipeline ui`: the Dagster UI and daemon (`dg dev`) on the instance the CLI records its runs in."""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from pathlib import Path

import click

MOCK_MONGO = "mongomock://demo"
INSTALLED_WORKSPACE = Path(__file__).resolve().parents[1] / "orchestration" / "workspace.yaml"  # beside code_location.py


def _in_this_project() -> bool:
    """Whether the working directory is this repository's root, the `dg` project of pyproject.toml's [tool.dg]."""
    pyproject = Path("pyproject.toml")
    tool = tomllib.loads(pyproject.read_text()).get("tool", {}) if pyproject.is_file() else {}
    return tool.get("dg", {}).get("project", {}).get("root_module") == "nova_pipeline"


@click.command("ui", context_settings={"ignore_unknown_options": True})
@click.argument("dg_args", nargs=-1, type=click.UNPROCESSED)
def ui_command(dg_args: tuple[str, ...]) -> None:
    """Start the Dagster UI at http://127.0.0.1:3000 (`dg dev`; options such as `-p 3001` are passed on) on
    DAGSTER_HOME, default data/.nova/dagster (created when missing), where the CLI's runs are recorded too.
    The code location is the spec in NOVA_SPEC (default data/nova.spec.yaml)."""
    dg = shutil.which("dg")
    if dg is None:
        click.echo("nova-pipeline: `dg` not found (pip install dagster-dg-cli)", err=True)
        sys.exit(2)
    from nova_pipeline.orchestration.dagster_storage import dagster_instance  # Dagster: seconds, this command only

    dagster_instance()  # sets DAGSTER_HOME; creates the default home when it is unset
    if not (os.environ.get("NOVA_MONGO_URI") or os.environ.get("MONGO_URI")):
        os.environ["NOVA_MONGO_URI"] = MOCK_MONGO
        click.echo(f"NOVA_MONGO_URI is not set: MongoDB targets use the in-process double ({MOCK_MONGO})", err=True)
    click.echo(f"DAGSTER_HOME={os.environ['DAGSTER_HOME']}", err=True)
    target = [] if _in_this_project() else ["-w", str(INSTALLED_WORKSPACE)]  # elsewhere: the installed location
    sys.stdout.flush()
    os.execv(dg, [dg, "dev", *target, *dg_args])
