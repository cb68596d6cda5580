"""`--json` for every command that prints results: the option and how the JSON is printed."""

from __future__ import annotations

import json

import click

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")


def print_json(data) -> None:
    """`data` as indented JSON on stdout (values JSON cannot hold as their text)."""
    click.echo(json.dumps(data, indent=2, default=str))
