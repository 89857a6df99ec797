"""Runs of the code location's own jobs, executed in this process but recorded as the UI's.

`JobDefinition.execute_in_process` records a run without a code location and with a job
copied for in-process use (another executor, an in-memory IO manager), so the UI lists it
under no job page and warns on re-execute that it may be a different version. The UI shows a
job's runs by the run tag `.dagster/repository` (`<repository>@<location>`), which
`DagsterInstance.create_run` writes from the run's remote job origin, and re-executes without
a warning when the run's origin and job snapshot both match the loaded job. `dagster job
execute` records runs without an origin too; `dagster job launch` has one but hands the run
to a code server and the run queue, seconds more than an export takes.

So the run is created here the way the webserver creates it: the job of `pipelines.definitions`
exactly as loaded (same snapshot), the origin of the location `workspace.yaml` declares (read
from the file, as the webserver reads it; no server is started), and, when the job has
Dagster's multiprocess-or-in-process default, the run config choosing its in-process mode
(the location's own default, `EXPORTS_EXECUTOR=default`, is the in-process executor). It
then executes in this process. A job with another executor (one that sends steps elsewhere, such as
Celery workers) runs its steps where that executor sends them, from the job rebuilt from the
location's module as the executor requires, and this process waits for them.

Dagster internals used here, probed by tests/pipelines/test_location_runs.py:
`dagster._core.workspace.load_target.WorkspaceFileTarget`, `dagster._core.remote_origin.
RemoteRepositoryOrigin`, `dagster._core.execution.api.create_execution_plan` and
`execute_run`, `dagster._core.definitions.job_base.InMemoryJob`,
`dagster._core.definitions.reconstruct.ReconstructableRepository`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
from dagster._core.definitions.job_base import IJob, InMemoryJob
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.execution.api import create_execution_plan, execute_run
from dagster._core.remote_origin import RemoteJobOrigin, RemoteRepositoryOrigin
from dagster._core.workspace.load_target import WorkspaceFileTarget

from record_exports.settings import REPO_ROOT

WORKSPACE_FILE = REPO_ROOT / "workspace.yaml"
IN_PROCESS_EXECUTION: dict[str, Any] = {"execution": {"config": {"in_process": {}}}}


def location_job_origin(
    defs: dg.Definitions, job_name: str, workspace_file: Path = WORKSPACE_FILE
) -> RemoteJobOrigin:
    """The origin the webserver gives runs of `job_name`: the workspace file's one location
    and the repository of `defs`."""
    [location] = WorkspaceFileTarget(paths=[str(workspace_file)]).create_origins()
    repository = RemoteRepositoryOrigin(location, defs.get_repository_def().name)
    return repository.get_job_origin(job_name)


def executable(
    job: dg.JobDefinition, origin: RemoteJobOrigin, workspace_file: Path
) -> tuple[IJob, dict[str, Any]]:
    """The job to execute and the run config that picks where its steps run: in this process
    with Dagster's default executor; otherwise where the job's executor sends them, which
    needs a job it can rebuild in another process (the location's module)."""
    if job.executor_def is dg.in_process_executor:
        return InMemoryJob(job), {}
    if job.executor_def is dg.multi_or_in_process_executor:
        return InMemoryJob(job), IN_PROCESS_EXECUTION
    target = origin.repository_origin.code_location_origin.loadable_target_origin
    if target.module_name is None or target.attribute is None:
        raise RuntimeError(
            f"{workspace_file} must load a python_module with an attribute for "
            f"{job.executor_def.name} to rebuild the job in its own processes"
        )
    folder = workspace_file.parent / (target.working_directory or ".")
    repository = ReconstructableRepository.for_module(
        target.module_name, target.attribute, str(folder.resolve())
    )
    return repository.get_reconstructable_job(job.name), {}


def execute_location_run(
    instance: dg.DagsterInstance,
    defs: dg.Definitions,
    job_name: str,
    run_config: Mapping[str, Any],
    tags: Mapping[str, str],
    workspace_file: Path = WORKSPACE_FILE,
) -> dg.DagsterRun:
    """Create a run of the location's `job_name` with its origin, execute it (see
    `executable`) and return the finished run."""
    job = defs.resolve_job_def(job_name)
    origin = location_job_origin(defs, job_name, workspace_file)
    to_execute, execution = executable(job, origin, workspace_file)
    config = {**run_config, **execution}
    plan = create_execution_plan(
        to_execute,
        run_config=config,
        instance_ref=instance.get_ref() if instance.is_persistent else None,
    )
    run = instance.create_run_for_job(
        job_def=job,
        execution_plan=plan,
        run_config=config,
        tags=tags,
        remote_job_origin=origin,
    )
    execute_run(to_execute, run, instance)
    finished = instance.get_run_by_id(run.run_id)
    if finished is None:
        raise RuntimeError(f"run {run.run_id} is missing from the Dagster instance")
    return finished
