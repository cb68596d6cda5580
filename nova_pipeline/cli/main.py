"""`nova-pipeline`: parses arguments and calls the engine or Dagster.

Exit codes: 0 success; 1 validation failed or rows quarantined beyond the
spec's tolerance; 2 bad input (spec, arguments, unreachable target), with a
one-line reason on stderr and no traceback.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import sys
import threading
import warnings
from pathlib import Path

import click
import psycopg

from nova_pipeline.core import connections, file_modes, helper_process
from nova_pipeline.cli.backup import backup_group, rollback_command
from nova_pipeline.cli.json_output import json_option, print_json
from nova_pipeline.cli.ui import ui_command
from nova_pipeline.backup.errors import BackupError, VerificationError
from nova_pipeline.core.run_lock import MigrationLocked
from nova_pipeline.extract.snapshot import SourceError
from nova_pipeline.core.spec import SpecError, load_spec
from nova_pipeline.core.staging_crypto import StagingKeyError
from nova_pipeline.core import target_state
from nova_pipeline.core.target_state import TargetChanged
from nova_pipeline.orchestration import executors

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # pgserver's platformdirs on headless machines
os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

BAD_INPUT = (SpecError, SourceError, connections.TargetUnreachable, FileNotFoundError, MigrationLocked, BackupError,
             TargetChanged, target_state.TargetTablesMissing, StagingKeyError)


class NovaGroup(click.Group):
    """Turns known bad-input errors into one line on stderr: exit 1 for a damaged backup, else 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except VerificationError as e:
            _fail(e, code=1)
        except psycopg.OperationalError as e:  # the server went away outside a step (steps report it themselves)
            _fail(RuntimeError(f"lost the connection to PostgreSQL: {e}".strip().splitlines()[0]), code=1)
        except BAD_INPUT as e:
            _fail(e)


def _fail(e: Exception, code: int = 2):
    click.echo(f"nova-pipeline: {connections.redact(str(e))}", err=True)
    sys.exit(code)


@click.group(cls=NovaGroup)
@click.version_option(package_name="nova-pipeline")
def main():
    """Declarative, verified SQLite → PostgreSQL + MongoDB migrations on Dagster."""
    file_modes.owner_only_umask()  # staging, snapshot, reports, Dagster's storage, backups: owner-only


spec_option = click.option("--spec", "spec_path", default="data/nova.spec.yaml", show_default=True,
                           type=click.Path(dir_okay=False), help="Migration spec (YAML).")
pg_option = click.option("--postgres-url", default=None, help="PostgreSQL URL (default: spec, env, embedded server).")
mongo_option = click.option("--mongo-uri", default=None, help="MongoDB URI (default: spec, NOVA_MONGO_URI, MONGO_URI).")
executor_option = click.option(
    "--executor", type=click.Choice(executors.EXECUTORS), default=None,
    help=f"Dagster executor: each step in this process, or each in its own (default: {executors.ENV} or "
         f"{executors.DEFAULT_EXECUTOR}). {executors.MOCK_NOTE}.")


@main.command()
@click.option("--source", required=True, type=click.Path(exists=True, dir_okay=False), help="SQLite database.")
@click.option("--out", default="spec.yaml", show_default=True, type=click.Path(dir_okay=False), help="Spec to write.")
@click.option("--schema", default="public", show_default=True, help="PostgreSQL schema of the tables.")
@json_option
def init(source, out, schema, as_json):
    """Introspect a SQLite database and write a spec plus a type report to review."""
    from nova_pipeline.appschema import proposal
    from nova_pipeline.core.spec import dump_spec, parse_spec

    proposed, type_report = proposal.propose_spec(Path(source), postgres_schema=schema)
    out_path = Path(out)
    src = Path(source).resolve()
    try:
        proposed["source"]["sqlite"] = os.path.relpath(src, out_path.resolve().parent)
    except ValueError:
        proposed["source"]["sqlite"] = str(src)
    spec = parse_spec(proposed, str(out_path))
    out_path.write_text(dump_spec(spec))
    report_path = out_path.with_suffix(".types.md")
    report_path.write_text(type_report.to_markdown())
    type_warnings = type_report.to_dict().get("warnings", [])
    if as_json:
        click.echo(json.dumps({"spec": str(out_path), "type_report": str(report_path), "tables": len(spec.tables),
                               "warnings": type_warnings}, indent=2))
        return
    for w in type_warnings:
        click.echo(f"warning: {w}", err=True)
    click.echo(f"wrote {out_path} ({len(spec.tables)} tables) and the type report {report_path}")


@main.command()
@spec_option
@json_option
def plan(spec_path, as_json):
    """Dry run: tables, targets, casts, DDL, row counts, partitions. Writes nothing."""
    from nova_pipeline.report import planning

    p = planning.plan(load_spec(spec_path))
    click.echo(json.dumps(p, indent=2, default=str) if as_json else planning.to_text(p))


@main.command()
@spec_option
@click.option("--target", type=click.Choice(["postgres", "mongo", "both"]), default="both", show_default=True)
@pg_option
@mongo_option
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None, help="Also write the report JSON here.")
@click.option("--no-backup", is_flag=True, help="Skip the pre-migration backup.")
@click.option("--force", is_flag=True, help="Replace target tables changed since the last migration (after the backup).")
@executor_option
@click.option("--integrity", type=click.Choice(["full", "quick"]), default=None,
              help="Snapshot check: full integrity_check (default; also every index against its table) or "
                   "quick_check (pages and constraints only; faster). Default: NOVA_INTEGRITY or full.")
@json_option
def migrate(spec_path, target, postgres_url, mongo_uri, report_path, no_backup, force, executor, integrity, as_json):
    """Run every phase for the spec's tables through Dagster and reconcile the result."""
    from nova_pipeline.extract.snapshot import INTEGRITY_ENV
    from nova_pipeline.orchestration import migration

    if integrity:  # read where the snapshot is checked, in this process or a step's
        os.environ[INTEGRITY_ENV] = integrity
    rep = migration.migrate(spec_path, target=target, postgres_url=postgres_url, mongo_uri=mongo_uri,
                            report_path=Path(report_path) if report_path else None, backup=not no_backup,
                            force=force, executor=executor)
    _print_report(rep, as_json)
    sys.exit(migration.exit_code(rep))


@main.command()
@click.argument("run_id", required=False)
@spec_option
@pg_option
@mongo_option
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None)
@click.option("--force", is_flag=True, help="Replace target tables changed since the last migration.")
@json_option
def resume(run_id, spec_path, postgres_url, mongo_uri, report_path, force, as_json):
    """Re-execute the last failed or interrupted migration (or RUN_ID) from where it stopped."""
    from nova_pipeline.orchestration import migration

    try:
        rep = migration.migrate(spec_path, postgres_url=postgres_url, mongo_uri=mongo_uri,
                                report_path=Path(report_path) if report_path else None, backup=False,
                                resume=True, resume_run=run_id, force=force)
    except ValueError as e:
        _fail(e)
    _print_report(rep, as_json)
    sys.exit(migration.exit_code(rep))


@main.command("load-partition")
@spec_option
@click.option("--table", required=True, help="A partitioned source table of the spec.")
@click.option("--partition", "key", required=True, help="Partition key: YYYY-MM-DD (the month's first day for monthly grain).")
@pg_option
@mongo_option
@json_option
def load_partition(spec_path, table, key, postgres_url, mongo_uri, as_json):
    """Materialize one partition of a partitioned table through Dagster: export its window, transform, load, check."""
    from nova_pipeline.orchestration import partition_runs
    from nova_pipeline.load.partitions import PartitionError

    spec = load_spec(spec_path)
    try:
        out = partition_runs.load_partition(spec, spec_path, table, key, postgres_url, mongo_uri)
    except PartitionError as e:
        _fail(e)
    failed = [c for c in out.checks if not c["passed"] and c.get("severity") != "WARN"]
    if as_json:
        click.echo(json.dumps({"run_id": out.run_id, "success": out.success, "errors": out.errors, "checks": out.checks},
                              indent=2, default=str))
    else:
        for c in out.checks:
            click.echo(f"{'PASS' if c['passed'] else 'FAIL':4} {c['table']}: {c['check']} — {c.get('detail', '')}")
        for where, message in out.errors.items():
            click.echo(f"FAIL {where}: {message}")
        click.echo(f"run {out.run_id}: {table} partition {key} {'loaded' if out.success and not failed else 'FAILED'}")
    sys.exit(0 if out.success and not failed else 1)


@main.command()
@spec_option
@pg_option
@mongo_option
@click.option("--report", "report_path", type=click.Path(dir_okay=False), default=None)
@json_option
def validate(spec_path, postgres_url, mongo_uri, report_path, as_json):
    """Run every check against the existing targets (exit 1 when a blocking check fails)."""
    from nova_pipeline.core.staging import for_spec
    from nova_pipeline.pipeline.preflight import resolve_targets
    from nova_pipeline.validate import run_all_checks

    spec = load_spec(spec_path)
    pg, mongo = resolve_targets(spec, postgres_url, mongo_uri)
    if pg and spec.table_items("postgres"):
        with connections.connect_postgres(pg, autocommit=True) as conn:
            if missing := target_state.missing_tables(conn, spec):
                raise target_state.TargetTablesMissing(
                    f"{connections.redact(pg)} has no table {', '.join(missing)}: run `nova-pipeline migrate` first")
    staging = for_spec(spec)
    if any(staging.files("clean", name) for name, _ in spec.table_items()):
        results = run_all_checks(spec, pg, mongo, staging)
    else:
        from nova_pipeline.pipeline.restage import checks_on_fresh_staging

        click.echo("no staged data (a successful migration removes it): checking the targets against a new "
                   "snapshot of the source, staged in a temporary directory", err=True)
        results = checks_on_fresh_staging(spec, pg, mongo)
    checks = [r.to_dict() for r in results]
    failed = [c for c in checks if not c["passed"] and c.get("severity", "ERROR") == "ERROR"]
    if report_path:
        Path(report_path).write_text(json.dumps({"status": "failed" if failed else "succeeded", "checks": checks},
                                                indent=2, default=str))
    if as_json:
        print_json(checks)
    else:
        for c in checks:
            click.echo(f"{'PASS' if c['passed'] else 'FAIL':4} {c['table']}: {c['check']} — {c.get('detail', '')}")
        click.echo(f"{len(checks) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


@main.command()
@spec_option
@click.option("--quarantine", is_flag=True, help="Also remove the quarantined rows' Parquet.")
@json_option
def clean(spec_path, quarantine, as_json):
    """Remove the plaintext the spec's runs left: staged Parquet, the source snapshot, cached facts (and quarantine)."""
    from nova_pipeline.core import retention
    from nova_pipeline.extract.snapshot import exclusive_area

    spec = load_spec(spec_path)
    with exclusive_area(spec):  # never under a running migration
        removed = retention.remove_plaintext(spec, quarantine=quarantine)
    left = retention.quarantine_left(spec)
    if as_json:
        click.echo(json.dumps({"removed": removed, "quarantine_kept": left}, indent=2))
        return
    for path in removed:
        click.echo(f"removed {path}")
    if not removed:
        click.echo("nothing to remove")
    if left:
        click.echo(f"kept the quarantined rows in {left} (remove them with --quarantine)")


@main.command("report")
@spec_option
@json_option
def show_report(spec_path, as_json):
    """Print the last migration report."""
    from nova_pipeline.report.report import REPORT_JSON, REPORT_MD

    spec = load_spec(spec_path)
    folder = spec.resolve(spec.reports)
    path = folder / (REPORT_JSON if as_json else REPORT_MD)
    if not path.exists():
        raise FileNotFoundError(f"no report yet in {folder}: run `nova-pipeline migrate` first")
    click.echo(path.read_text())


@main.command()
@spec_option
@pg_option
@mongo_option
@json_option
def doctor(spec_path, postgres_url, mongo_uri, as_json):
    """Check configuration and connectivity of each target; say what is wrong and how to fix it (exit 2 on a FAIL)."""
    from nova_pipeline.cli import doctor as doc

    checks = doc.diagnose(spec_path, postgres_url, mongo_uri)
    if as_json:
        click.echo(json.dumps(doc.to_json(checks), indent=2))
    else:
        for c in checks:
            click.echo(f"{'FAIL' if c.level == 'fail' else c.level:4} {c.message}")
    sys.exit(0 if all(c.ok for c in checks) else 2)


@main.group()
def db():
    """The embedded PostgreSQL of this working directory (data/.nova/pg), used when no PostgreSQL is configured."""


@db.command("url")
@json_option
def db_url(as_json):
    """Start the embedded PostgreSQL if it is not running and print its URL (for psql or any client)."""
    url = connections.embedded_postgres_url()
    click.echo(json.dumps({"url": url, "data_dir": str(connections.EMBEDDED_DIR.resolve())}) if as_json else url)


@db.command("psql", context_settings={"ignore_unknown_options": True})
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
def db_psql(psql_args):
    """Open psql on the embedded PostgreSQL; arguments after `--` go to psql (e.g. `-- -c 'SELECT 1'`)."""
    import subprocess

    sys.exit(subprocess.run(connections.psql_command(connections.embedded_postgres_url(), psql_args)).returncode)


@db.command("stop")
@json_option
def db_stop(as_json):
    """Stop the embedded PostgreSQL (its data stays; the next command that needs it starts it again)."""
    stopped = connections.stop_embedded_postgres()
    data_dir = connections.EMBEDDED_DIR.resolve()
    if as_json:
        click.echo(json.dumps({"stopped": stopped, "data_dir": str(data_dir)}))
    else:
        click.echo(f"{'stopped' if stopped else 'not running:'} the embedded PostgreSQL in {data_dir}")


@main.command()
@click.option("--scale", default=1.0, show_default=True, help="Sample size (1 ≈ 30k rows; 50 ≈ 2.16 M rows).")
@click.option("--spec", "spec_path", default="data/nova.spec.yaml", show_default=True, type=click.Path(dir_okay=False))
@pg_option
@mongo_option
@click.option("--regenerate", is_flag=True, help="Regenerate the sample database even if it exists.")
@json_option
def demo(scale, spec_path, postgres_url, mongo_uri, regenerate, as_json):
    """Generate the Nova sample, migrate it (embedded PostgreSQL; in-process MongoDB double unless configured), and
    print a summary with the paths of the full report."""
    from nova_pipeline.orchestration import migration
    from nova_pipeline.demo import sample

    spec = load_spec(spec_path)
    db = spec.resolve(spec.source.sqlite)
    if regenerate or not db.exists():
        counts = sample.generate(db, scale=scale)
        click.echo(f"generated {db}: {sum(counts.values()):,} rows in {len(counts)} tables", err=True)
    rep = migration.migrate(spec_path, postgres_url=postgres_url, mongo_uri=mongo_uri, backup=False,
                            mock_mongo_fallback=True)
    if as_json:
        _print_report(rep, as_json)
    else:
        from nova_pipeline.demo.summary import summary_lines
        from nova_pipeline.report.report import REPORT_CHART, REPORT_JSON, REPORT_MD

        reports = spec.resolve(spec.reports)
        click.echo("\n".join(summary_lines(rep.to_dict(), [reports / n for n in (REPORT_MD, REPORT_JSON, REPORT_CHART)])))
    sys.exit(migration.exit_code(rep))


def _print_report(rep, as_json: bool) -> None:
    if as_json:
        print_json(rep.to_dict())
    else:
        click.echo(rep.to_markdown())


main.add_command(backup_group, "backup")
main.add_command(rollback_command, "rollback")
main.add_command(ui_command, "ui")


def entry() -> None:
    """The console command: `main`, then a quick exit once its output is flushed.

    Tearing the interpreter down (thousands of modules of Dagster, Great
    Expectations, pandas) takes a noticeable time after the work is done. The
    helper processes (Great Expectations, source facts) are ended first; exit
    handlers still run; only when no other non-daemon thread is left does the
    process end without the teardown.
    """
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code
    if isinstance(code, str):
        print(code, file=sys.stderr)
        code = 1
    helper_process.stop_helpers()
    if any(not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        sys.exit(code)
    atexit._run_exitfuncs()
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):  # e.g. a closed pipe (`| head`)
            stream.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    entry()
