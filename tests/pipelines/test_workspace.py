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


def validate(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(DAGSTER), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )


@pytest.mark.slow
def test_definitions_validate(dagster_env: Path, sqlite_url: str) -> None:
    result = validate({"RECORDS_DATABASE_URL": sqlite_url, "EXPORTS_FIRST_DAY": "2019-01-01"})
    assert result.returncode == 0, result.stderr
    assert "All code locations passed validation" in result.stderr + result.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("2025-13-01", "EXPORTS_FIRST_DAY='2025-13-01' is not a real date; use YYYY-MM-DD"),
        ("last year", "EXPORTS_FIRST_DAY='last year' is not a date; use YYYY-MM-DD"),
        ("2999-01-01", "EXPORTS_FIRST_DAY=2999-01-01 is in the future"),
    ],
)
def test_a_bad_first_day_stops_the_loading_naming_the_variable(
    dagster_env: Path, sqlite_url: str, value: str, says: str
) -> None:
    result = validate({"RECORDS_DATABASE_URL": sqlite_url, "EXPORTS_FIRST_DAY": value})
    assert result.returncode != 0
    output = result.stderr + result.stdout
    [line] = [line for line in output.splitlines() if "SettingError: EXPORTS_FIRST_DAY" in line]
    assert says in line


def test_definitions_hold_the_contract_names() -> None:
    from pipelines.definitions import defs

    assert defs.resolve_job_def("export_records").name == "export_records"
    asset_keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    assert "daily_account_exports" in asset_keys
    assert defs.resolve_schedule_def("nightly_exports").cron_schedule == "0 2 * * *"
    sensors = {"changed_records_sensor", "export_requests_sensor"}
    for name in sensors:
        assert defs.resolve_sensor_def(name).name == name
    assert (
        defs.resolve_sensor_def("export_requests_sensor").default_status
        == dg.DefaultSensorStatus.RUNNING
    )
