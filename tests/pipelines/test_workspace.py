"""The code location loads the way `make dev` and the daemon load it: through workspace.yaml."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DAGSTER = Path(sys.executable).parent / "dagster"


@pytest.mark.slow
def test_definitions_validate(dagster_env: Path, sqlite_url: str) -> None:
    result = subprocess.run(
        [str(DAGSTER), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "RECORDS_DATABASE_URL": sqlite_url},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "All code locations passed validation" in result.stderr + result.stdout


def test_definitions_hold_the_contract_names() -> None:
    from pipelines.definitions import defs

    assert defs.resolve_job_def("export_records").name == "export_records"
    asset_keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    assert "daily_account_exports" in asset_keys
    assert defs.resolve_schedule_def("nightly_exports").cron_schedule == "0 2 * * *"
    sensors = {
        "account_partitions_sensor",
        "changed_records_sensor",
        "export_requests_sensor",
    }
    for name in sensors:
        assert defs.resolve_sensor_def(name).name == name
    assert (
        defs.resolve_sensor_def("export_requests_sensor").default_status
        == dg.DefaultSensorStatus.RUNNING
    )
