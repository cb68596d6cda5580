"""PostgreSQL client tools: pick the pg_dump/pg_restore/psql matching the server, run them without secrets on argv.

pg_dump refuses servers newer than itself and Debian's may be older than the
server, so binaries are chosen by major version among the `pgserver` wheel,
/usr/lib/postgresql/*/bin and PATH. The password travels in PGPASSWORD; the
URL's other settings (sslmode, sslrootcert, hostaddr, …) in the conninfo.
"""

from __future__ import annotations

import functools
import glob
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Iterable
from typing import BinaryIO

from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from nova_pipeline.backup.errors import BackupError
from nova_pipeline.core.connections import connect_postgres, redact


def _candidate_dirs() -> list[str]:
    dirs = []
    try:
        import pgserver

        dirs.append(os.path.join(os.path.dirname(pgserver.__file__), "pginstall", "bin"))
    except ImportError:
        pass
    dirs += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    dirs += [os.path.dirname(p) for p in filter(None, [shutil.which("pg_dump")])]
    return dirs


@functools.cache
def _tool_major(path: str) -> int | None:
    try:
        out = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except OSError:
        return None
    m = re.search(r"\(PostgreSQL\) (\d+)", out)
    return int(m.group(1)) if m else None


def tool_dir(server_major: int) -> str:
    """The bin directory whose tools match server_major (else the oldest newer one)."""
    found: dict[int, str] = {}
    for d in _candidate_dirs():
        major = _tool_major(os.path.join(d, "pg_dump"))
        if major is not None and os.path.exists(os.path.join(d, "pg_restore")):
            found.setdefault(major, d)
    usable = sorted(m for m in found if m >= server_major)
    if not usable:
        have = ", ".join(f"{m} at {d}" for m, d in sorted(found.items())) or "none"
        raise BackupError(f"no pg_dump for PostgreSQL {server_major} or newer (found: {have})")
    return found[usable[0]]


def tool_version(bin_dir: str, name: str) -> str:
    out = subprocess.run([os.path.join(bin_dir, name), "--version"], capture_output=True, text=True, timeout=10).stdout
    return out.strip()


def server_info(url: str) -> tuple[int, str]:
    """(server_version_num major, server_version) of the server at url."""
    with connect_postgres(url) as conn:
        num = int(conn.execute("SHOW server_version_num").fetchone()[0])
        version = conn.execute("SHOW server_version").fetchone()[0]
    return num // 10000, version


def existing_schemas(url: str, wanted: list[str]) -> list[str]:
    with connect_postgres(url) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", (wanted,)).fetchall()
    present = {r[0] for r in rows}
    return [s for s in wanted if s in present]


def _split_secret(url: str) -> tuple[str, dict[str, str]]:
    """(conninfo without password, environment carrying it) for a client tool."""
    params = conninfo_to_dict(url)
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    password = params.pop("password", None)
    if password:
        env["PGPASSWORD"] = password
    return make_conninfo(**params), env


def pg_dump(url: str, schemas: list[str], out: BinaryIO, bin_dir: str) -> None:
    """`pg_dump -Fc` of the given schemas, streamed from its stdout into `out` (no file on disk)."""
    conninfo, env = _split_secret(url)
    patterns = [arg for s in schemas for arg in ("-n", '"' + s.replace('"', '""') + '"')]
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([os.path.join(bin_dir, "pg_dump"), "-Fc", "-Z", "0", "--no-password", *patterns,
                                 "-d", conninfo], stdout=subprocess.PIPE, stderr=err, env=env)
        try:
            while chunk := proc.stdout.read(1 << 20):
                out.write(chunk)
        except BaseException:
            proc.kill()
            raise
        finally:
            proc.stdout.close()
            rc = proc.wait()
        if rc != 0:
            err.seek(0)
            raise BackupError(f"pg_dump failed: {redact(_first_error(err.read()))}")


def pg_restore(dump: Iterable[bytes] | None, url: str, replace_schemas: list[str], bin_dir: str) -> None:
    """Make replace_schemas equal to the dump in one transaction: drop them, then replay the dump.

    The dump's bytes are streamed into pg_restore's stdin (no file on disk).
    Dropping first removes objects created after the backup (a plain --clean
    only drops what the dump contains); psql --single-transaction makes a
    failed restore leave the target unchanged.
    """
    conninfo, env = _split_secret(url)
    drops = b"".join(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE;\n").format(sql.Identifier(s)).as_string(None).encode()
                     for s in replace_schemas)
    with tempfile.TemporaryFile() as psql_err, tempfile.TemporaryFile() as restore_err:
        psql = subprocess.Popen([os.path.join(bin_dir, "psql"), "-X", "-q", "--no-password", "--single-transaction",
                                 "-v", "ON_ERROR_STOP=1", "-d", conninfo],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=psql_err, env=env)
        try:
            restore_rc, dump_error = _stream_into(psql, drops, dump, bin_dir, env, restore_err)
        except BaseException:
            psql.kill()  # before stdin closes: psql would otherwise commit the partial script
            psql.wait()
            raise
        if psql.poll() is None and (restore_rc != 0 or dump_error is not None):
            psql.kill()
            psql.wait()
            if dump_error is not None:
                raise dump_error
            restore_err.seek(0)
            raise BackupError(f"pg_restore failed: {redact(_first_error(restore_err.read()))}")
        if psql.poll() is None:
            try:
                psql.stdin.close()
            except BrokenPipeError:
                pass
        if psql.wait() != 0:
            psql_err.seek(0)
            raise BackupError(f"restore into {redact(url)} failed (nothing changed): {redact(_first_error(psql_err.read()))}")


def _stream_into(psql: subprocess.Popen, drops: bytes, dump: Iterable[bytes] | None, bin_dir: str,
                 env: dict[str, str], restore_err: BinaryIO) -> tuple[int, BaseException | None]:
    """Write the drops, then pg_restore's SQL for the dump, into psql; (pg_restore's exit code, error reading the dump)."""
    try:
        psql.stdin.write(b"SET client_min_messages = warning;\n" + drops)
        if dump is None:
            return 0, None
        restore = subprocess.Popen([os.path.join(bin_dir, "pg_restore"), "--clean", "--if-exists", "--no-owner",
                                    "-f", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=restore_err, env=env)
        feeder = _Feeder(dump, restore.stdin)
        try:
            shutil.copyfileobj(restore.stdout, psql.stdin, 1 << 20)
        finally:
            restore.stdout.close()
            rc = restore.wait()
            feeder.join()
        return rc, feeder.error
    except BrokenPipeError:
        psql.wait()  # psql stopped on an error; its stderr says which
        return 0, None


class _Feeder(threading.Thread):
    """Writes byte chunks into a subprocess's stdin and closes it; `error` holds what went wrong reading them."""

    def __init__(self, chunks: Iterable[bytes], stdin: BinaryIO):
        super().__init__(daemon=True)
        self.chunks, self.stdin = chunks, stdin
        self.error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            for chunk in self.chunks:
                self.stdin.write(chunk)
        except BrokenPipeError:
            pass  # the reader stopped; its exit code says why
        except BaseException as e:  # noqa: BLE001 - reported through `error`
            self.error = e
        finally:
            try:
                self.stdin.close()
            except BrokenPipeError:
                pass


def _first_error(stderr: bytes) -> str:
    text = stderr.decode(errors="replace")
    return next((line for line in text.splitlines() if "error" in line.lower()), text.strip()[:300])
