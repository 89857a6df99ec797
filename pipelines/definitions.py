"""The one wiring module: every job, asset, schedule, sensor and resource of the code location.

`workspace.yaml` loads only this module. Resources take their settings through
`dg.EnvVar`, resolved when a run launches. The one setting read while the definitions
are built is `EXPORTS_TIMEZONE`: the nightly schedule and the sale-day partitions are
defined in it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import dagster as dg

from assets.daily_account_exports import build_daily_account_exports
from pipelines.export_job import export_records
from pipelines.partitions import daily_account_partitions
from pipelines.schedules import build_nightly_exports
from pipelines.sensors.account_partitions import account_partitions_sensor
from pipelines.sensors.changed_records import build_changed_records_sensor
from pipelines.sensors.export_requests import export_requests_sensor
from pipelines.sensors.request_outcomes import request_outcome_sensors
from record_exports.settings import EXPORTS_DIR, EXPORTS_TIMEZONE, RECORDS_DATABASE_URL
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
    resource_overrides: Mapping[str, Any] | None = None, timezone: str | None = None
) -> dg.Definitions:
    """The code location; tests pass resource overrides and a time zone. The CLI runs the
    module's `defs` unchanged, so its runs are runs of the location's own jobs."""
    timezone = timezone or EXPORTS_TIMEZONE.value()
    partitions_def = daily_account_partitions(timezone)
    daily_exports = build_daily_account_exports(partitions_def)
    daily_job = dg.define_asset_job(
        DAILY_JOB_NAME,
        selection=[daily_exports],
        description="Materializes partitions of daily_account_exports.",
    )
    defs = dg.Definitions(
        assets=[daily_exports],
        jobs=[export_records, daily_job],
        schedules=[build_nightly_exports(daily_job, timezone)],
        sensors=[
            account_partitions_sensor,
            build_changed_records_sensor(daily_job, partitions_def, daily_exports.key),
            export_requests_sensor,
            *request_outcome_sensors,
        ],
        resources={**default_resources(), **(resource_overrides or {})},
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
