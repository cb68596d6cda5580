"""Issue 22 item 6 without a TLS server: the TLS settings reach every client a URL is handed to."""

from __future__ import annotations

import os

import psycopg
import pytest
from sqlalchemy.engine import make_url

from nova_pipeline.core import connections
from nova_pipeline.backup import pgtools
from nova_pipeline.validate.expectations import sqlalchemy_url

TLS_QUERY = "sslmode=verify-full&sslrootcert=/etc/nova/ca.crt&sslcert=/etc/nova/client.crt&sslkey=/etc/nova/client.key"


@pytest.fixture
def compose_env(monkeypatch):
    for key in [k for k in os.environ if k.startswith(("POSTGRES_", "NOVA_POSTGRES"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("POSTGRES_HOST", "db.example.com")
    monkeypatch.setenv("POSTGRES_PASSWORD", "s3cret")
    return monkeypatch


@pytest.mark.parametrize(("value", "mode"), [("true", "require"), ("1", "require"), ("false", "prefer"),
                                             ("", "prefer"), ("verify-full", "verify-full"),
                                             ("VERIFY-CA", "verify-ca"), ("disable", "disable")])
def test_postgres_ssl_becomes_the_urls_sslmode(compose_env, value, mode):
    compose_env.setenv("POSTGRES_SSL", value)
    assert connections.postgres_url_from_env().endswith(f"@db.example.com:5432/nova_universe?sslmode={mode}")


def test_an_unknown_postgres_ssl_is_one_line(compose_env):
    compose_env.setenv("POSTGRES_SSL", "maybe")
    with pytest.raises(connections.TargetUnreachable, match=r"^POSTGRES_SSL='maybe': use true, false or one of"):
        connections.postgres_url_from_env()


def test_client_tools_get_the_tls_settings_and_not_the_password():
    conninfo, env = pgtools._split_secret(f"postgresql://nova:s3cret@db.example.com:5432/app?{TLS_QUERY}"
                                          "&hostaddr=10.0.0.5")
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    assert params == {"user": "nova", "host": "db.example.com", "port": "5432", "dbname": "app",
                      "sslmode": "verify-full", "sslrootcert": "/etc/nova/ca.crt", "sslcert": "/etc/nova/client.crt",
                      "sslkey": "/etc/nova/client.key", "hostaddr": "10.0.0.5"}
    assert env["PGPASSWORD"] == "s3cret" and "s3cret" not in conninfo


def test_gx_url_keeps_the_connections_tls_settings(pg_url):
    # sslmode=disable works against the test server (no TLS); the certificate paths are carried, not read
    url = pg_url + ("&" if "?" in pg_url else "?") + "sslmode=disable&sslrootcert=/etc/nova/ca.crt"
    with psycopg.connect(url) as conn:
        params = connections.tls_parameters(conn)
        assert set(params) <= set(connections.TLS_PARAMETERS)
        assert params["sslmode"] == "disable" and params["sslrootcert"] == "/etc/nova/ca.crt"
        query = make_url(sqlalchemy_url(conn)).query
        assert connections.session_tls(conn) is None and connections.is_local_connection(conn)
    assert query["sslmode"] == "disable" and query["sslrootcert"] == "/etc/nova/ca.crt"


def test_gx_url_names_the_sslmode_even_when_it_is_libpqs_default(pg_url, monkeypatch):
    monkeypatch.delenv("PGSSLMODE", raising=False)
    with psycopg.connect(pg_url) as conn:
        # a PGSSLMODE in GX's environment must not override what this connection was made with
        assert connections.tls_parameters(conn)["sslmode"] == "prefer"
        assert make_url(sqlalchemy_url(conn)).query["sslmode"] == "prefer"
