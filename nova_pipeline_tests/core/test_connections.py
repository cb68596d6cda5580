"""Target resolution and secret redaction."""

import pytest

from nova_pipeline.core import connections
from nova_pipeline.core.spec import parse_spec


@pytest.mark.parametrize("text, expected", [
    ("postgresql://nova:s3cr3t@db:5432/x", "postgresql://nova:***@db:5432/x"),
    ("mongodb://u:p%40ss@h/?authSource=admin", "mongodb://u:***@h/?authSource=admin"),
    ("host=db password=hunter2 user=x", "host=db password=*** user=x"),
    ("postgresql://nova@db/x", "postgresql://nova@db/x"),
])
def test_redact_hides_passwords(text, expected):
    assert connections.redact(text) == expected


def spec(url=None):
    return parse_spec({"source": {"sqlite": "a"}, "targets": {"postgres": {"url": url}}, "tables": {}})


def test_postgres_url_precedence(monkeypatch):
    for var in ("NOVA_POSTGRES_URL", "POSTGRES_HOST", "POSTGRES_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("POSTGRES_HOST", "pg.internal")
    monkeypatch.setenv("POSTGRES_PASSWORD", "p@ss word")
    monkeypatch.setenv("POSTGRES_SSL", "true")
    assert connections.postgres_url(spec()) == ("postgresql://nova_user:p%40ss%20word@pg.internal:5432/"
                                                "nova_universe?sslmode=require")
    monkeypatch.setenv("NOVA_POSTGRES_URL", "postgresql://from-nova-env/db")
    assert connections.postgres_url(spec()) == "postgresql://from-nova-env/db"
    monkeypatch.setenv("MY_URL", "postgresql://from-spec-env/db")
    assert connections.postgres_url(spec("env:MY_URL")) == "postgresql://from-spec-env/db"
    assert connections.postgres_url(spec("env:MY_URL"), "postgresql://flag/db") == "postgresql://flag/db"


def test_no_postgres_configured_without_embedded_is_a_clear_error(monkeypatch):
    for var in ("NOVA_POSTGRES_URL", "POSTGRES_HOST"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(connections.TargetUnreachable, match="NOVA_POSTGRES_URL"):
        connections.postgres_url(spec(), embedded=False)


def test_unreachable_postgres_names_host_not_password():
    with pytest.raises(connections.TargetUnreachable) as err:
        connections.connect_postgres("postgresql://nova:topsecret@127.0.0.1:1/x")
    assert "127.0.0.1" in str(err.value) and "topsecret" not in str(err.value)


def test_mongomock_clients_are_shared_per_uri():
    a, b = connections.mongo_client("mongomock://same"), connections.mongo_client("mongomock://same")
    assert a is b and connections.mongo_client("mongomock://other") is not a
