"""The one wiring module: every job, asset, schedule, sensor and resource of the code location.

`workspace.yaml` loads only this module. Resources take their settings through
`dg.EnvVar`, resolved when a run launches. Three settings are read while the definitions
are built: `EXPORTS_TIMEZONE` and `EXPORTS_FIRST_DAY` define the sale-day partitions and the
nightly schedule (a bad value stops the loading with a one-line message naming the
variable), and `EXPORTS_EXECUTOR` chooses what runs the steps (pipelines/executors.py).
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Mapping
from typing import Any

import dagster as dg

from assets.daily_account_exports import build_daily_account_exports
from pipelines.executors import configured_executor
from pipelines.export_job import export_records
from pipelines.partitions import sale_day_partitions
from pipelines.schedules import build_nightly_exports
from pipelines.sensors.changed_records import build_changed_records_sensor
from pipelines.sensors.export_requests import export_requests_sensor
from pipelines.sensors.request_outcomes import request_outcome_sensors
from record_exports.settings import (
    EXPORTS_DIR,
    EXPORTS_TIMEZONE,
    RECORDS_DATABASE_URL,
    exports_first_day,
)
from resources.export_storage import ExportStorage
from resources.progress_reporter import ProgressReporter
from resources.records_database import RecordsDatabase

DAILY_JOB_NAME = "daily_account_exports_job"


def default_resources() -> dict[str, Any]:
    return {
        "records_database": RecordsDatabase(url=dg.EnvVar(RECORDS_DATABASE_URL.variable)),
        "export_storage": ExportStorage(root=dg.EnvVar(EXPORTS_DIR.variable)),
        "progress_reporter": ProgressReporter(),
    }


def build_definitions(
    resource_overrides: Mapping[str, Any] | None = None,
    timezone: str | None = None,
    first_day: dt.date | None = None,
) -> dg.Definitions:
    """The code location; tests pass resource overrides, a time zone and a first sale day.
    The CLI runs the module's `defs` unchanged, so its runs are runs of the location's own
    jobs."""
    timezone = timezone or EXPORTS_TIMEZONE.value()
    first_day = first_day or exports_first_day(timezone)
    partitions_def = sale_day_partitions(first_day, timezone)
    daily_exports = build_daily_account_exports(partitions_def)
    daily_job = dg.define_asset_job(
        DAILY_JOB_NAME,
        selection=[daily_exports],
        description="Writes the daily files of a sale day (or a range: one run).",
    )
    defs = dg.Definitions(
        assets=[daily_exports],
        jobs=[export_records, daily_job],
        schedules=[build_nightly_exports(daily_job)],
        sensors=[
            build_changed_records_sensor(daily_job, partitions_def, daily_exports.key),
            export_requests_sensor,
            *request_outcome_sensors,
        ],
        resources={**default_resources(), **(resource_overrides or {})},
        executor=configured_executor(),
    )
    resolve_quietly(defs)
    return defs


def resolve_quietly(defs: dg.Definitions) -> None:
    """Resolve the repository now, muting one warning Dagster 1.13 raises about itself:
    binding resources to a sensor that targets a job passes the beta `owners` parameter
    internally and warns, which would put noise on the CLI's stderr. The resolved
    repository is cached, so later uses do not warn again."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Parameter `owners`", category=dg.BetaWarning)
        defs.get_repository_def()


defs = build_definitions()
