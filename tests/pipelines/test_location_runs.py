"""A CLI export is a run of the code location's own `export_records` job: listed where the UI
lists that job's runs, with the location's snapshot, tagged, executed in this process, and
with nothing stored besides the export file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
import yaml
from sqlalchemy.engine import Engine

from pipelines.dagster_events import output_metadata
from pipelines.definitions import defs
from pipelines.export_runner import run_export_job
from pipelines.location_runs import WORKSPACE_FILE, execute_location_run, location_job_origin
from pipelines.output_target import resolve_output
from record_exports.params import parse_export_params
from record_exports.seed import seed_records
from record_exports.settings import REPO_ROOT
from tests.pipelines import multiprocess_location

# What the UI filters a job's runs by (dagster._core.storage.tags.REPOSITORY_LABEL_TAG).
REPOSITORY_TAG = ".dagster/repository"


@pytest.fixture
def cli_instance(
    postgres_url: str, pg_engine: Engine, dagster_env: Path, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """The environment of a CLI export: records in PostgreSQL, a local instance; returns the
    exports root."""
    seed_records(pg_engine, 300, 2, seed=9)
    monkeypatch.setenv("RECORDS_DATABASE_URL", postgres_url)
    return dagster_env


def location_name() -> str:
    """The location workspace.yaml declares, named as Dagster names a module location."""
    [entry] = yaml.safe_load(WORKSPACE_FILE.read_text())["load_from"]
    module = entry["python_module"]
    return f"{module['module_name']}:{module['attribute']}"


def test_a_cli_run_is_a_run_of_the_location_job(cli_instance: Path) -> None:
    params = parse_export_params({"format": "csv", "account_codes": ["ACC2"]})
    outcome = run_export_job(params, output=None, terminal=False)
    assert outcome.success and outcome.path is not None

    label = f"__repository__@{location_name()}"
    assert location_job_origin(defs, "export_records").repository_origin.get_label() == label
    with dg.DagsterInstance.get() as instance:
        listed = instance.get_runs(
            dg.RunsFilter(job_name="export_records", tags={REPOSITORY_TAG: label})
        )
        assert [run.run_id for run in listed] == [outcome.run_id]
        run = listed[0]
        assert run.job_snapshot_id == defs.resolve_job_def("export_records").get_job_snapshot_id()
        assert {key: run.tags[key] for key in ("source", "format", "accounts")} == {
            "source": "cli",
            "format": "csv",
            "accounts": "ACC2",
        }
        kinds = [
            entry.dagster_event.event_type
            for entry in instance.all_logs(run.run_id)
            if entry.dagster_event is not None
        ]
        engine_events = [
            entry.user_message
            for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
        ]
        storage = Path(instance.storage_directory())
    assert any(f"in process (pid: {os.getpid()})" in message for message in engine_events)
    # The output is the file alone: no IO manager event, no pickled copy under the instance.
    assert dg.DagsterEventType.HANDLED_OUTPUT not in kinds
    # (Dagster's fs_io_manager keeps outputs at storage/<run id>/<step>/<output>.)
    assert not (storage / outcome.run_id / "export").exists()
    path = Path(outcome.path)
    assert path.parent == cli_instance / "on-demand"
    assert pl.read_csv(path).height == outcome.row_count


def test_output_goes_to_the_run_config_not_a_changed_job(
    cli_instance: Path, tmp_path: Path
) -> None:
    """`--output` is resource config of the run, so the job (and its snapshot) stays the
    location's, and the run's config tells where the file went."""
    target = tmp_path / "chosen" / "report.csv"
    params = parse_export_params({"columns": ["id", "qty"], "output_name": target.name})
    outcome = run_export_job(params, output=resolve_output(str(target)), terminal=False)
    assert outcome.success and outcome.path == str(target)
    assert target.read_text().splitlines()[0] == "id,qty"
    with dg.DagsterInstance.get() as instance:
        run = instance.get_run_by_id(outcome.run_id)
    assert run is not None
    assert run.job_snapshot_id == defs.resolve_job_def("export_records").get_job_snapshot_id()
    resources: Any = run.run_config["resources"]
    assert resources["export_storage"]["config"] == {
        "root": str(target.parent),
        "on_demand_folder": "",
    }


def test_a_job_with_another_executor_runs_where_it_sends_steps(
    dagster_instance: dg.DagsterInstance, tmp_path: Path
) -> None:
    """A location whose job has its own executor (Celery once EXPORTS_EXECUTOR says so) keeps
    it: the run is still the location's, its step runs in another process, and this one
    waits for it."""
    workspace = tmp_path / "workspace.yaml"
    workspace.write_text(
        yaml.safe_dump(
            {
                "load_from": [
                    {
                        "python_module": {
                            "module_name": "tests.pipelines.multiprocess_location",
                            "attribute": "defs",
                            "working_directory": str(REPO_ROOT),
                        }
                    }
                ]
            }
        )
    )
    run = execute_location_run(
        dagster_instance, multiprocess_location.defs, "elsewhere", {}, {}, workspace
    )
    assert run.status is dg.DagsterRunStatus.SUCCESS
    assert "execution" not in run.run_config
    assert run.remote_job_origin is not None
    label = run.remote_job_origin.repository_origin.get_label()
    assert label == "__repository__@tests.pipelines.multiprocess_location:defs"
    step_pid = output_metadata(dagster_instance, run.run_id)["pid"]
    assert isinstance(step_pid, int) and step_pid != os.getpid()
