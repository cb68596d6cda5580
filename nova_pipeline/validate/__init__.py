"""Validation: prove a migration by comparing target tables and collections with source facts from staging."""

from nova_pipeline.core.results import CheckResult
from nova_pipeline.validate.all_checks import run_all_checks, table_checks
from nova_pipeline.validate.source_facts import source_facts

__all__ = ["CheckResult", "run_all_checks", "source_facts", "table_checks"]
