"""nova-pipeline: declarative, verified SQLite → PostgreSQL + MongoDB migrations on Dagster."""

__version__ = "0.1.0"
