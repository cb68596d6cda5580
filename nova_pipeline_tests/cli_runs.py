"""Drive the CLI as a user does: `init` a spec from a SQLite file (optionally edited), then `migrate --report`."""

from __future__ import annotations

import json
from types import SimpleNamespace

import yaml
from click.testing import CliRunner

from nova_pipeline.cli.main import main
from nova_pipeline.core.spec import load_spec


def init_and_migrate(folder, db, pg_url, edit=None, spec_name="spec.yaml") -> SimpleNamespace:
    """`init` a spec for `db` in `folder` (`edit` may change its mapping), `migrate --no-backup --report`;
    returns db, spec_path, spec, init and res (click results), report (None when none was written), url."""
    spec_path = folder / spec_name
    runner = CliRunner()
    init = runner.invoke(main, ["init", "--source", str(db), "--out", str(spec_path)], catch_exceptions=False)
    assert init.exit_code == 0, init.output
    if edit:
        data = yaml.safe_load(spec_path.read_text())
        edit(data)
        spec_path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    report_path = folder / "report.json"
    res = runner.invoke(main, ["migrate", "--spec", str(spec_path), "--postgres-url", pg_url, "--no-backup",
                               "--report", str(report_path)], catch_exceptions=False)
    report = json.loads(report_path.read_text()) if report_path.exists() else None
    return SimpleNamespace(db=db, spec_path=spec_path, spec=load_spec(spec_path), init=init, res=res, report=report,
                           url=pg_url)
