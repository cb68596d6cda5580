"""Where the targets are: URL resolution, the embedded PostgreSQL, MongoDB clients.

PostgreSQL URL precedence: explicit argument > spec `targets.postgres.url`
(`env:VAR` allowed) > `NOVA_POSTGRES_URL` > `POSTGRES_*` variables > the
embedded server from the `pgserver` wheel under `data/.nova/`.
MongoDB: explicit > spec > `NOVA_MONGO_URI` > `MONGO_URI`; `mongomock://NAME`
selects the in-process double (demo and tests only).

TLS to PostgreSQL is the URL's (or libpq's PGSSL* variables') business: every
client keeps it, since psycopg and the client tools get the URL's parameters
and URLs rebuilt from a live connection carry `tls_parameters`.
"""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from urllib.parse import quote

import psycopg

from nova_pipeline.core import mongo_double
from nova_pipeline.core.spec import Spec, resolve_setting

EMBEDDED_DIR = Path("data/.nova/pg")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# libpq's TLS settings (and hostaddr, which a URL rebuilt from the host name would lose).
TLS_PARAMETERS = ("sslmode", "sslnegotiation", "sslcompression", "sslcert", "sslkey", "sslpassword", "sslcertmode",
                  "sslrootcert", "sslcrl", "sslcrldir", "sslsni", "ssl_min_protocol_version",
                  "ssl_max_protocol_version", "hostaddr")


class TargetUnreachable(RuntimeError):
    """A target could not be reached; the message is one line without secrets."""


def redact(text: str) -> str:
    """Replace passwords in URLs/URIs and `password=` pairs with '***'."""
    text = re.sub(r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):(?P<pw>[^@/\s]+)@", r"\g<scheme>\g<user>:***@", text)
    return re.sub(r"(?i)(password\s*=\s*)([^\s&;]+)", r"\1***", text)


def postgres_url_from_env() -> str | None:
    """A URL from NOVA_POSTGRES_URL or the POSTGRES_* variables of the original deployment."""
    if os.environ.get("NOVA_POSTGRES_URL"):
        return os.environ["NOVA_POSTGRES_URL"]
    if not os.environ.get("POSTGRES_HOST"):
        return None
    user = quote(os.environ.get("POSTGRES_USER", "nova_user"), safe="")
    pw = os.environ.get("POSTGRES_PASSWORD")
    auth = f"{user}:{quote(pw, safe='')}" if pw else user
    host, port = os.environ["POSTGRES_HOST"], os.environ.get("POSTGRES_PORT", "5432")
    db = os.environ.get("POSTGRES_DB", "nova_universe")
    return f"postgresql://{auth}@{host}:{port}/{db}?sslmode={_sslmode_from_env()}"


def _sslmode_from_env() -> str:
    """POSTGRES_SSL: true → require, false/unset → prefer, or one of libpq's sslmodes (verify-full, …)."""
    value = os.environ.get("POSTGRES_SSL", "false").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return "require"
    if value in ("", "0", "false", "no", "off"):
        return "prefer"
    if value in SSL_MODES:
        return value
    raise TargetUnreachable(f"POSTGRES_SSL={value!r}: use true, false or one of {', '.join(SSL_MODES)}")


def tls_parameters(conn: psycopg.Connection) -> dict[str, str]:
    """The TLS settings (and hostaddr) a live connection was made with, for a URL another client builds from
    it (SQLAlchemy for GX): sslmode always, the others when set."""
    params = conn.info.get_parameters()
    out = {k: params[k] for k in TLS_PARAMETERS if params.get(k)}
    out.setdefault("sslmode", next((i.val.decode() for i in conn.pgconn.info if i.keyword == b"sslmode" and i.val),
                                   "prefer"))
    return out


def session_tls(conn: psycopg.Connection) -> str | None:
    """The TLS protocol this session runs over (e.g. 'TLSv1.3'), or None when it is not encrypted."""
    row = conn.execute("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    return (row[1] or "TLS") if row and row[0] else None


def is_local_connection(conn: psycopg.Connection) -> bool:
    """True when the session does not cross a network: a unix socket or a loopback address."""
    host, addr = conn.info.host or "", conn.info.hostaddr or ""
    if not host or host.startswith("/") or (not addr and host == "localhost"):
        return True
    try:
        return ipaddress.ip_address(addr or host).is_loopback
    except ValueError:
        return False


def embedded_postgres_url(data_dir: Path = EMBEDDED_DIR) -> str:
    """Start (or reuse) the embedded PostgreSQL under data_dir and return its URL; it keeps running afterwards
    (`stop_embedded_postgres` ends it)."""
    import pgserver

    data_dir.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(data_dir.resolve(), cleanup_mode=None)
    if running_embedded_postgres_url(data_dir) is None:  # stopped since this process first started it
        server.ensure_postgres_running()
    return server.get_uri()


def running_embedded_postgres_url(data_dir: Path = EMBEDDED_DIR) -> str | None:
    """The URL of the embedded PostgreSQL under data_dir when it runs, else None (never starts it)."""
    from pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(data_dir.resolve()) if data_dir.is_dir() else None
    return info.get_uri() if info is not None and info.is_running() else None


def stop_embedded_postgres(data_dir: Path = EMBEDDED_DIR) -> bool:
    """Stop the embedded PostgreSQL under data_dir (fast shutdown: open sessions are ended); False when it was
    not running. Its data stays; the next command that needs it starts it again."""
    if running_embedded_postgres_url(data_dir) is None:
        return False
    from pgserver._commands import pg_ctl

    # pgserver runs the server as the user `pgserver` when started by root; pg_ctl must run as the same user.
    user = "pgserver" if hasattr(os, "geteuid") and os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=data_dir.resolve(), user=user)
    return True


def psql_command(url: str, args: tuple[str, ...] = ()) -> list[str]:
    """The command line of the psql that ships with the embedded server, connected to `url`."""
    from pgserver._commands import POSTGRES_BIN_PATH

    return [str(POSTGRES_BIN_PATH / "psql"), url, *args]


def postgres_url(spec: Spec | None = None, explicit: str | None = None, *, embedded: bool = True) -> str:
    """The PostgreSQL URL to use, by the precedence in the module docstring."""
    url = explicit or (resolve_setting(spec.targets.postgres.url) if spec and spec.targets.postgres else None)
    url = url or postgres_url_from_env()
    if url:
        return _well_formed(url)
    if not embedded:
        raise TargetUnreachable("no PostgreSQL configured: set NOVA_POSTGRES_URL or POSTGRES_HOST")
    return embedded_postgres_url()


def _well_formed(url: str) -> str:
    """`url` when libpq can read it (a postgresql:// URI or key=value pairs), else a one-line error."""
    scheme, sep, _ = url.partition("://")
    if (sep and scheme.lower() in ("postgresql", "postgres")) or (not sep and "=" in url):
        return url
    raise TargetUnreachable(f"not a PostgreSQL URL: {redact(url)!r} (expected postgresql://user@host:port/database)")


def mongo_uri(spec: Spec | None = None, explicit: str | None = None) -> str | None:
    """The MongoDB URI to use, or None when none is configured."""
    uri = explicit or (resolve_setting(spec.targets.mongo.uri) if spec and spec.targets.mongo else None)
    return uri or os.environ.get("NOVA_MONGO_URI") or os.environ.get("MONGO_URI") or None


def connect_postgres(url: str, **kwargs) -> psycopg.Connection:
    """Open a psycopg connection; unreachable servers raise TargetUnreachable (no secrets)."""
    try:
        return psycopg.connect(url, connect_timeout=10, **kwargs)
    except (psycopg.OperationalError, psycopg.ProgrammingError) as e:  # ProgrammingError: unreadable conninfo
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TargetUnreachable(f"PostgreSQL unreachable at {redact(url)}: {redact(reason)}") from None


def is_mock_uri(uri: str) -> bool:
    return uri.startswith("mongomock://")


def mongo_client(uri: str):
    """A pymongo client, or for mongomock:// URIs the process's in-process double of that name (mongo_double)."""
    if is_mock_uri(uri):
        return mongo_double.client(uri)
    import pymongo

    return pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000, tz_aware=True)


def ping_mongo(client, uri: str) -> None:
    """Raise TargetUnreachable unless the server answers."""
    if is_mock_uri(uri):
        return
    import pymongo.errors

    try:
        client.admin.command("ping")
    except pymongo.errors.PyMongoError as e:
        raise TargetUnreachable(f"MongoDB unreachable at {redact(uri)}: {redact(str(e).splitlines()[0])}") from None


def mongo_database(uri: str, database: str):
    """`database` on the client for `uri`, once the server answers (TargetUnreachable otherwise)."""
    client = mongo_client(uri)
    ping_mongo(client, uri)
    return client[database]


def describe_mongo(uri: str) -> str:
    """Which MongoDB a URI reaches, for reports: the in-process double, or the server's version and address."""
    if is_mock_uri(uri):
        return "the in-process double (mongomock), not a MongoDB server"
    import pymongo.errors

    try:
        with mongo_client(uri) as client:
            version = client.server_info()["version"]
    except pymongo.errors.PyMongoError as e:
        return f"MongoDB at {redact(uri)} (version unknown: {redact(str(e).splitlines()[0])})"
    return f"MongoDB {version} at {redact(uri)}"
