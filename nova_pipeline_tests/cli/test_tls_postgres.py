"""Issue 22 item 6: TLS to PostgreSQL is honoured end to end, on a real server that refuses plaintext.

Debian's PostgreSQL (icu_postgres.run_server) with ssl=on and a throwaway CA made with `cryptography`; its
pg_hba.conf rejects TCP sessions without TLS (except to the database `plain`, for doctor's warning), and the
tests set PGSSLMODE=disable, so every client that lost the URL's `sslmode=verify-full` (psycopg, GX's
SQLAlchemy engine, pg_dump, psql) would be refused. The server log shows each session's TLS.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import itertools
import json
import os
import shutil
import sqlite3
import tempfile
from pathlib import Path

import psycopg
import pytest
import yaml
from click.testing import CliRunner

from nova_pipeline.core import connections
from nova_pipeline.cli.main import main
from nova_pipeline_tests.icu_postgres import postgres_bin, run_server

x509 = pytest.importorskip("cryptography.x509")
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

SERVER_NAME = "db.nova.test"  # reached through hostaddr=127.0.0.1: no DNS, and verify-full checks this name
KEY_HEX = "11" * 32
_databases = itertools.count()


def _certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool) -> x509.Certificate:
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(SERVER_NAME), x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _write_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) of a throwaway CA."""
    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("nova test CA", ca_key, "nova test CA", ca_key, ca=True)
    server = _certificate(SERVER_NAME, server_key, "nova test CA", ca_key, ca=False)
    paths = directory / "ca.crt", directory / "server.crt", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(server_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    paths[2].chmod(0o600)
    return paths


@pytest.fixture(scope="module")
def tls_server():
    """(admin URL over TLS, CA certificate, server log directory) of a PostgreSQL that refuses plaintext TCP."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("Debian's PostgreSQL is not installed: apt-get install postgresql (.ci/run does)")
    files = Path(tempfile.mkdtemp(prefix="nova-tls-pg-"))
    ca, cert, key = _write_certificates(files)
    hba = files / "pg_hba.conf"
    hba.write_text("local all all trust\n"
                   "hostnossl plain all 127.0.0.1/32 trust\n"
                   "hostssl all all 127.0.0.1/32 trust\n"
                   "hostnossl all all 127.0.0.1/32 reject\n")
    logs = files / "log"
    logs.mkdir()
    if os.geteuid() == 0:  # the server runs as `postgres` and must own its key
        for path in (files, cert, key, hba, logs):
            shutil.chown(path, "postgres", "postgres")
    server = run_server(bindir, f"-c ssl=on -c ssl_cert_file={cert} -c ssl_key_file={key} -c hba_file={hba} "
                                f"-c log_connections=on -c logging_collector=on -c log_directory={logs} "
                                f"-c log_filename=server.log")
    admin = next(server) + "?sslmode=require"
    try:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE plain")
        yield admin, ca, logs / "server.log"
    finally:
        server.close()
        shutil.rmtree(files, ignore_errors=True)


def _tls_database(tls_server) -> tuple[str, str]:
    """(database name, verify-full URL) of a fresh database on the TLS server."""
    admin, ca, _ = tls_server
    name = f"tls{next(_databases)}"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    port = psycopg.conninfo.conninfo_to_dict(admin)["port"]
    return name, (f"postgresql://postgres@{SERVER_NAME}:{port}/{name}"
                  f"?hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={ca}")


@pytest.fixture
def app_spec(tmp_path) -> Path:
    """A spec for a small source whose column expectation makes GX open its own connection."""
    db = tmp_path / "app.sqlite"
    with sqlite3.connect(db) as conn:
        conn.executescript("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL, age INTEGER);")
        conn.executemany("INSERT INTO users VALUES (?, ?, ?)", [(i, f"u{i}@x.io", 20 + i) for i in range(1, 51)])
    conn.close()
    spec = tmp_path / "spec.yaml"
    res = CliRunner().invoke(main, ["init", "--source", str(db), "--out", str(spec)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    data = yaml.safe_load(spec.read_text())
    data["tables"]["users"]["columns"]["age"]["expect"] = {"min": 0, "max": 150}
    data["backup"] = {"dest": str(tmp_path / "backups")}
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    return spec


def _authorized(log: Path, database: str) -> list[str]:
    return [line for line in log.read_text().splitlines()
            if "connection authorized:" in line and f"database={database} " in line]


def test_plaintext_is_refused_by_the_test_server(tls_server):
    name, url = _tls_database(tls_server)
    with pytest.raises(psycopg.OperationalError, match="no encryption"):
        psycopg.connect(url.replace("sslmode=verify-full", "sslmode=disable"), connect_timeout=10)
    with psycopg.connect(url, connect_timeout=10) as conn:
        assert connections.session_tls(conn).startswith("TLSv1.")


def test_migrate_checks_backup_and_restore_all_run_over_tls(tls_server, app_spec, tmp_path, monkeypatch):
    name, url = _tls_database(tls_server)
    monkeypatch.setenv("PGSSLMODE", "disable")  # a client that lost the URL's sslmode would go plaintext: refused
    monkeypatch.setenv("NOVA_BACKUP_KEY", KEY_HEX)
    runner = CliRunner()
    report = tmp_path / "report.json"
    res = runner.invoke(main, ["migrate", "--spec", str(app_spec), "--postgres-url", url, "--no-backup",
                               "--report", str(report)], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    checks = [c for c in json.loads(report.read_text())["checks"] if c["check"] == "expectations"]
    assert checks and all(c["passed"] for c in checks), checks

    res = runner.invoke(main, ["backup", "create", "--spec", str(app_spec), "--postgres-url", url],
                        catch_exceptions=False)
    assert res.exit_code == 0, res.output
    backup = res.output.strip().splitlines()[-1]
    with psycopg.connect(url, autocommit=True) as conn:
        assert connections.session_tls(conn).startswith("TLSv1.")
        schema = conn.execute("SELECT table_schema FROM information_schema.tables WHERE table_name = 'users'"
                              ).fetchone()[0]
        conn.execute(f'DELETE FROM "{schema}".users WHERE id > 10')
    res = runner.invoke(main, ["backup", "restore", backup, "--postgres-url", url], catch_exceptions=False)
    assert res.exit_code == 0, res.output
    with psycopg.connect(url) as conn:
        assert conn.execute(f'SELECT count(*), sum(age) FROM "{schema}".users').fetchone() == (50, sum(range(21, 71)))

    sessions = _authorized(tls_server[2], name)
    tools = {app for line in sessions for app in ("pg_dump", "psql") if f"application_name={app} " in line}
    assert tools == {"pg_dump", "psql"}, sessions
    plain = [line for line in sessions if "SSL enabled" not in line]
    assert sessions and not plain, plain


def _doctor(spec: Path, url: str) -> dict:
    res = CliRunner().invoke(main, ["doctor", "--spec", str(spec), "--postgres-url", url, "--json"])
    assert res.exit_code == 0, res.output
    return next(c for c in json.loads(res.stdout)["checks"] if c["name"] == "postgres")


def test_doctor_warns_when_a_network_target_is_reached_without_tls(tls_server, app_spec, monkeypatch):
    admin, _, _ = tls_server
    port = psycopg.conninfo.conninfo_to_dict(admin)["port"]
    plain = f"postgresql://postgres@127.0.0.1:{port}/plain?sslmode=disable"
    _, encrypted = _tls_database(tls_server)
    monkeypatch.delenv("NOVA_BACKUP_KEY", raising=False)

    local = _doctor(app_spec, plain)
    assert local["level"] == "ok" and local["message"].endswith("(local, no TLS)"), local
    assert _doctor(app_spec, encrypted)["message"].endswith("(TLS: TLSv1.3)")

    monkeypatch.setattr(connections, "is_local_connection", lambda conn: False)  # as seen from another machine
    remote = _doctor(app_spec, plain)
    assert remote["level"] == "warn" and "reached without TLS" in remote["message"], remote
    assert "sslmode=require" in remote["message"]
    remote_tls = _doctor(app_spec, encrypted)
    assert remote_tls["level"] == "ok" and "TLS: TLSv1" in remote_tls["message"], remote_tls
