"""`nova-pipeline ui`: the Dagster UI and daemon (`dg dev`) on the instance the CLI records its runs in."""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from pathlib import Path

import click

from nova_pipeline.orchestration.code_location import CODE_LOCATION
from nova_pipeline.orchestration.dagster_storage import dagster_instance

MOCK_MONGO = "mongomock://demo"
INSTALLED_TARGET = ["-m", "nova_pipeline.orchestration.definitions", "--location-name", CODE_LOCATION]


def _in_dg_project() -> bool:
    """Whether the working directory is a `dg` project (this repository's root: pyproject.toml with [tool.dg])."""
    pyproject = Path("pyproject.toml")
    return pyproject.is_file() and "dg" in tomllib.loads(pyproject.read_text()).get("tool", {})


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
    dagster_instance()  # sets DAGSTER_HOME; creates the default home when it is unset
    if not (os.environ.get("NOVA_MONGO_URI") or os.environ.get("MONGO_URI")):
        os.environ["NOVA_MONGO_URI"] = MOCK_MONGO
        click.echo(f"NOVA_MONGO_URI is not set: MongoDB targets use the in-process double ({MOCK_MONGO})", err=True)
    click.echo(f"DAGSTER_HOME={os.environ['DAGSTER_HOME']}", err=True)
    target = [] if _in_dg_project() else INSTALLED_TARGET  # elsewhere, name the installed code location
    sys.stdout.flush()
    os.execv(dg, [dg, "dev", *target, *dg_args])
