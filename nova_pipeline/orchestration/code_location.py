"""The code location the UI serves (pyproject [tool.dg], workspace.yaml, deploy/workspace.yaml), and the origin
CLI runs record so that the UI files them under it.

A run executed in process has no origin of its own, and the UI's overview timeline leaves out every run
whose `repositoryOrigin` is empty ("No runs"); the Runs list shows them, the timeline does not.
"""

from __future__ import annotations

from dagster import DagsterInstance
from dagster._core.definitions.repository_definition import SINGLETON_REPOSITORY_NAME
from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteJobOrigin, RemoteRepositoryOrigin

CODE_LOCATION = "nova_pipeline"


def job_origin(job_name: str) -> RemoteJobOrigin:
    """The origin of `job_name` in the code location: what a run launched from the UI records."""
    repository = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin(CODE_LOCATION), SINGLETON_REPOSITORY_NAME)
    return RemoteJobOrigin(repository, job_name)


def file_runs_under_code_location(instance: DagsterInstance) -> DagsterInstance:
    """Make the runs `instance` creates without an origin record the code location's (execute_in_process
    takes none), as the runs launched from the UI do."""
    create = instance.create_run_for_job

    def create_run_for_job(job_def, *args, remote_job_origin: RemoteJobOrigin | None = None, **kwargs):
        return create(job_def, *args, remote_job_origin=remote_job_origin or job_origin(job_def.name), **kwargs)

    instance.create_run_for_job = create_run_for_job
    return instance
