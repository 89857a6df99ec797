"""`nightly_exports`: at 02:00 `EXPORTS_TIMEZONE`, yesterday's partition for every account.

Yesterday is the day before the scheduled time in that time zone; 02:00 leaves the
day's late edits two hours to land. Accounts are the registered partitions (see
`account_partitions_sensor`). Run keys name the day and account, so a tick that is
evaluated twice launches nothing twice.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg

from pipelines.partitions import ACCOUNTS_PARTITIONS_NAME, partition_key

CRON = "0 2 * * *"


def yesterday(scheduled: dt.datetime | None, timezone: str) -> dt.date:
    """The sale day before `scheduled` (now when evaluated by hand) in `timezone`."""
    scheduled = scheduled or dt.datetime.now(dt.UTC)
    return scheduled.astimezone(ZoneInfo(timezone)).date() - dt.timedelta(days=1)


def build_nightly_exports(
    job: dg.UnresolvedAssetJobDefinition, timezone: str
) -> dg.ScheduleDefinition:
    @dg.schedule(
        name="nightly_exports",
        cron_schedule=CRON,
        execution_timezone=timezone,
        job=job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"02:00 {timezone}: yesterday's daily export of every account.",
    )
    def nightly_exports(
        context: dg.ScheduleEvaluationContext,
    ) -> list[dg.RunRequest] | dg.SkipReason:
        day = yesterday(context.scheduled_execution_time, timezone)
        codes = context.instance.get_dynamic_partitions(ACCOUNTS_PARTITIONS_NAME)
        if not codes:
            return dg.SkipReason("no accounts registered yet (account_partitions_sensor)")
        return [
            dg.RunRequest(
                run_key=f"nightly-{day.isoformat()}-{code}",
                partition_key=partition_key(code, day),
            )
            for code in sorted(codes)
        ]

    return nightly_exports
