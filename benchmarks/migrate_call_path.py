"""Which package modules one CLI `migrate` of the Nova sample runs, and the call path to each report build.

    python benchmarks/migrate_call_path.py [--scale 0.05]

Runs in a temporary directory with its own embedded PostgreSQL and the in-process MongoDB double, in process
(NOVA_EXECUTOR=in_process) so a profiler sees every step. Prints the modules whose functions ran, then for each
call of report.build_report / MigrationReport.from_dict the package modules on the stack (hops = module changes).
Below scale 1 the sample spec's smoke tests (written for scale 1) fail, so migrate exits 1; the path is the same.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
from pathlib import Path

os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
os.environ["NOVA_EXECUTOR"] = "in_process"
REPO = Path(__file__).resolve().parents[1]
WATCHED = {("nova_pipeline.report.report", "build_report"), ("nova_pipeline.report.report", "from_dict")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.05)
    args = parser.parse_args()
    import pgserver
    from click.testing import CliRunner

    work = Path(tempfile.mkdtemp(prefix="nova-call-path-"))
    work.chmod(0o755)  # as root, pgserver runs postgres as another user
    (work / "pg").mkdir(mode=0o755)
    server = pgserver.get_server(str(work / "pg"), cleanup_mode="stop")
    os.environ["DAGSTER_HOME"] = str(work / "dagster")
    os.chdir(work)
    (work / "data").mkdir()
    shutil.copy(REPO / "data" / "nova.spec.yaml", work / "data" / "nova.spec.yaml")
    from nova_pipeline.cli.main import main as cli
    from nova_pipeline.demo import sample

    sample.generate(work / "data" / "nova.sqlite", scale=args.scale)
    modules, paths = set(), []

    def profile(frame, event, arg):
        name = frame.f_globals.get("__name__", "")
        if event != "call" or not name.startswith("nova_pipeline.") or frame.f_code.co_name == "<module>":
            return
        modules.add(name)
        if (name, frame.f_code.co_name) in WATCHED:
            stack, f = [], frame
            while f is not None:
                if (m := f.f_globals.get("__name__", "")).startswith("nova_pipeline.") and (not stack or stack[-1] != m):
                    stack.append(m)
                f = f.f_back
            paths.append((frame.f_code.co_name, stack[::-1]))

    sys.setprofile(profile)
    threading.setprofile(profile)
    try:
        res = CliRunner().invoke(cli, ["migrate", "--spec", "data/nova.spec.yaml", "--postgres-url", server.get_uri(),
                                       "--mongo-uri", "mongomock://call-path", "--no-backup"])
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
        server.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    print(f"migrate exit {res.exit_code}; {len(modules)} package modules ran a function")
    for m in sorted(modules):
        print(f"  {m}")
    for fn, stack in paths:
        print(f"{fn}: {len(stack) - 1} hops: " + " -> ".join(m.removeprefix("nova_pipeline.") for m in stack))


if __name__ == "__main__":
    main()
