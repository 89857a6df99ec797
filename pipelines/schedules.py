"""`nightly_exports`: at 02:00 `EXPORTS_TIMEZONE`, yesterday's files of every account, one run.

Built from the partitioned daily job, so the schedule's page shows its partition set and
each tick requests the newest day partition: the day before the tick, in the time zone of
the partitions (the same `EXPORTS_TIMEZONE`). 02:00 leaves the day's late edits two hours
to land; later edits are `changed_records_sensor`'s. Dagster keys each run by its
partition, so a tick evaluated twice launches nothing twice.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    # Only the name of the type `build_schedule_from_partitioned_job` returns for an asset
    # job; dagster does not export it.
    from dagster._core.definitions.partitions.partitioned_schedule import (
        UnresolvedPartitionedAssetScheduleDefinition,
    )

SCHEDULE_NAME = "nightly_exports"
HOUR = 2


def build_nightly_exports(
    job: dg.UnresolvedAssetJobDefinition,
) -> dg.ScheduleDefinition | UnresolvedPartitionedAssetScheduleDefinition:
    """The schedule requests the job's newest partition, which is yesterday at 02:00."""
    return dg.build_schedule_from_partitioned_job(
        job,
        name=SCHEDULE_NAME,
        hour_of_day=HOUR,
        minute_of_hour=0,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"{HOUR:02d}:00 in EXPORTS_TIMEZONE: yesterday's daily files of every "
        "account, one run.",
    )
