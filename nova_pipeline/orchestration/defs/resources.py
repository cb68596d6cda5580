"""Dagster resources: the spec and the two targets, as small typed clients."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property

import dagster as dg
import psycopg

from nova_pipeline.core import connections
from nova_pipeline.core.spec import Spec, load_spec


class NovaConfig(dg.ConfigurableResource):
    """The migration spec and run-wide options."""

    spec_path: str = "data/nova.spec.yaml"

    @cached_property
    def spec(self) -> Spec:
        """The parsed spec (read once per run)."""
        return load_spec(self.spec_path)


class PostgresResource(dg.ConfigurableResource):
    """PostgreSQL target; empty `url_override` resolves from the spec, env vars or the embedded server."""

    url_override: str = ""

    def url(self, spec: Spec | None = None) -> str:
        """The resolved URL (contains secrets: never log it; use connections.redact)."""
        return connections.postgres_url(spec, self.url_override or None)

    @contextmanager
    def connect(self, spec: Spec | None = None, **kwargs) -> Iterator[psycopg.Connection]:
        """A psycopg connection, closed on exit."""
        with connections.connect_postgres(self.url(spec), **kwargs) as conn:
            yield conn


class MongoResource(dg.ConfigurableResource):
    """MongoDB target; `mongomock://NAME` is the in-process double used by the demo and tests."""

    uri_override: str = ""

    def uri(self, spec: Spec | None = None) -> str | None:
        """The resolved URI, or None when no MongoDB is configured."""
        return connections.mongo_uri(spec, self.uri_override or None)

    def database(self, spec: Spec):
        """The spec's target database on a (cached) client; raises TargetUnreachable when none is set or reachable."""
        uri = self.uri(spec)
        if not uri:
            raise connections.TargetUnreachable("no MongoDB configured: set NOVA_MONGO_URI or targets.mongo.uri")
        client = connections.mongo_client(uri)
        connections.ping_mongo(client, uri)
        return client[spec.targets.mongo.database]

    def is_mock(self, spec: Spec) -> bool:
        """True when documents go to the in-process double, not a real server."""
        uri = self.uri(spec)
        return bool(uri) and connections.is_mock_uri(uri)
