"""The smallest targets a pipeline call accepts (no Dagster resource needed)."""

from contextlib import contextmanager

import psycopg


class Postgres:
    """A PostgreSQL target: a URL."""

    def __init__(self, url: str):
        self._url = url

    def url(self, spec=None) -> str:
        return self._url

    @contextmanager
    def connect(self, spec=None, **kwargs):
        with psycopg.connect(self._url, **kwargs) as conn:
            yield conn
