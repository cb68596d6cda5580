"""Dagster resources: the run context (core/run_context.py) and the two targets, as small typed clients."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import psycopg

from nova_pipeline.core import connections
from nova_pipeline.core.file_modes import owner_only_umask
from nova_pipeline.core.run_context import RunContext
from nova_pipeline.core.spec import Spec, load_spec


Nova = dg.ResourceParam[RunContext]  # how an asset asks for the run context: `nova: Nova`


@dg.resource(config_schema={"spec_path": dg.Field(str, default_value="data/nova.spec.yaml")},
             description="The run context (spec, staging area, snapshot, profile, facts) rebuilt from the spec file, "
                         "so any step can run alone in any process.")
def run_context_resource(init_context: dg.InitResourceContext) -> RunContext:
    owner_only_umask()  # a step process (multiprocess executor, dagster dev) did not start from the CLI
    return RunContext.for_spec(load_spec(init_context.resource_config["spec_path"]))


def nova_resource(spec_path: str | None = None, ctx: RunContext | None = None) -> dg.ResourceDefinition:
    """The `nova` resource: a given context (an in-process run shares the caller's: its started snapshot and
    mongomock clients), else one rebuilt from `spec_path` in each step's process."""
    if ctx is not None:
        return dg.ResourceDefinition.hardcoded_resource(ctx, "The run context of the command that started the run.")
    return run_context_resource.configured({"spec_path": spec_path})


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
        return connections.mongo_database(uri, spec.targets.mongo.database)

    def is_mock(self, spec: Spec) -> bool:
        """True when documents go to the in-process double, not a real server."""
        uri = self.uri(spec)
        return bool(uri) and connections.is_mock_uri(uri)
