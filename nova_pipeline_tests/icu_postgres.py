"""A PostgreSQL server built with ICU and contrib (Debian's postgresql package) for the tests of COLLATE NOCASE.

The embedded pgserver build has neither ICU nor citext, so the ICU path needs Debian's server: initdb and
pg_ctl in a temporary directory (as the `postgres` user when the tests run as root: initdb refuses root),
listening on 127.0.0.1 at a free port, stopped by its PID at the end. Tests skip only when the binaries are
missing (.ci/run installs them).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def postgres_bin() -> Path | None:
    """The bin directory of the newest installed Debian PostgreSQL, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_server(bindir: Path, options: str = "") -> Iterator[str]:
    """Start a throwaway server from `bindir` (extra postgres `options`, e.g. `-c ssl=on`); yield its admin URL;
    stop it by its PID and remove its files."""
    root = Path(tempfile.mkdtemp(prefix="nova-icu-pg-"))
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(root, "postgres", "postgres")
    data, port = root / "data", _free_port()
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
                    "-E", "UTF8", "--locale=C.UTF-8"], check=True, capture_output=True)
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w", "-o",
                    f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off {options}", "start"],
                   check=True, capture_output=True)
    pid = int((data / "postmaster.pid").read_text().split()[0])
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        os.kill(pid, signal.SIGINT)  # fast shutdown
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        shutil.rmtree(root, ignore_errors=True)
