"""Which executor the code location gives its jobs: Dagster's default unless the deployment
says `EXPORTS_EXECUTOR=celery`; and the workers' config agrees with the executor's."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import yaml

from pipelines.definitions import DAILY_JOB_NAME, build_definitions
from pipelines.executors import (
    EXECUTOR_VARIABLE,
    celery_executor_config,
    configured_executor,
    executor_named,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def job_executor_names(timezone: str = "UTC") -> dict[str, str]:
    """Executor name of every job of the code location, the implicit asset job included."""
    repository = build_definitions(timezone=timezone).get_repository_def()
    return {job.name: job.executor_def.name for job in repository.get_all_jobs()}


def test_without_the_variable_every_job_runs_in_the_runs_own_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(EXECUTOR_VARIABLE, raising=False)
    assert configured_executor() is dg.in_process_executor
    names = job_executor_names()
    assert {"export_records", DAILY_JOB_NAME} <= set(names)
    assert set(names.values()) == {"in_process"}


def test_default_is_the_same_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EXECUTOR_VARIABLE, "default")
    assert set(job_executor_names().values()) == {"in_process"}


def test_celery_runs_the_steps_of_every_job(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EXECUTOR_VARIABLE, "celery")
    names = job_executor_names()
    assert {"export_records", DAILY_JOB_NAME} <= set(names)
    assert set(names.values()) == {"celery"}


def test_an_unknown_executor_is_refused_with_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(EXECUTOR_VARIABLE, "k8s")
    with pytest.raises(ValueError, match=r"EXPORTS_EXECUTOR must be 'default'.*'celery'.*'k8s'"):
        build_definitions(timezone="UTC")


def test_celery_config_names_variables_never_values() -> None:
    """The broker URL may hold a password: the config (shown in the UI) holds only the
    variable names, resolved where the run or the worker starts."""
    config = celery_executor_config()
    assert config["broker"] == {"env": "CELERY_BROKER_URL"}
    assert config["backend"] == {"env": "CELERY_RESULT_BACKEND"}
    assert config["config_source"]["task_acks_late"] is True


def test_workers_are_started_with_the_executors_config() -> None:
    """deploy/celery.yaml (what `dagster-celery worker start -y` reads) must say what the
    executor says, or runs and workers talk past each other."""
    shipped = yaml.safe_load((REPO_ROOT / "deploy" / "celery.yaml").read_text())
    assert shipped == {"execution": {"config": celery_executor_config()}}


def test_the_celery_executor_is_dagster_celerys_own() -> None:
    celery = executor_named("celery")
    assert celery is not None
    assert celery.name == "celery"
    assert executor_named("") is dg.in_process_executor
