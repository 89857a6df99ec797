"""`nightly_exports`: one run of yesterday's partition, in the schedule's time zone."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from pipelines.definitions import DAILY_JOB_NAME, build_definitions
from tests.dagster_support import Setup, live_account_days
from tests.factories import oracle_account_day_csv


def evaluate(
    defs: dg.Definitions, instance: dg.DagsterInstance, when: dt.datetime
) -> list[dg.RunRequest]:
    schedule = defs.resolve_schedule_def("nightly_exports")
    context = dg.build_schedule_context(
        instance=instance, scheduled_execution_time=when, repository_def=defs.get_repository_def()
    )
    data = schedule.evaluate_tick(context)
    return list(data.run_requests or [])


@pytest.mark.parametrize(
    ("timezone", "local_time", "expected_day"),
    [
        ("UTC", dt.datetime(2026, 3, 10, 2, 0), "2026-03-09"),
        # 02:00 in Tokyo is 17:00 UTC the day before: yesterday is Tokyo's yesterday.
        ("Asia/Tokyo", dt.datetime(2026, 3, 10, 2, 0), "2026-03-09"),
        # 02:00 in Los Angeles is 10:00 UTC, the day after a DST change.
        ("America/Los_Angeles", dt.datetime(2026, 3, 9, 2, 0), "2026-03-08"),
    ],
)
def test_one_run_of_yesterday_in_the_schedule_time_zone(
    dagster_instance: dg.DagsterInstance,
    timezone: str,
    local_time: dt.datetime,
    expected_day: str,
) -> None:
    defs = build_definitions(timezone=timezone)
    schedule = defs.resolve_schedule_def("nightly_exports")
    assert schedule.cron_schedule == "0 2 * * *"
    assert schedule.execution_timezone == timezone
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    # Built from the partitioned job: the schedule's page shows the job's partition set.
    assert schedule.job_name == DAILY_JOB_NAME
    assert defs.resolve_job_def(DAILY_JOB_NAME).partitions_def is not None

    requests = evaluate(defs, dagster_instance, local_time.replace(tzinfo=ZoneInfo(timezone)))

    assert [r.partition_key for r in requests] == [expected_day]
    assert requests[0].run_key == expected_day  # a tick evaluated twice runs once


def test_the_time_zone_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPORTS_TIMEZONE", "Europe/Berlin")
    defs = build_definitions()
    assert defs.resolve_schedule_def("nightly_exports").execution_timezone == "Europe/Berlin"
    monkeypatch.delenv("EXPORTS_TIMEZONE")
    assert build_definitions().resolve_schedule_def("nightly_exports").execution_timezone == "UTC"


def test_the_requested_run_writes_every_accounts_files(dagster_setup: Setup) -> None:
    """The schedule's request runs as one run and writes every account's file of the day."""
    days = Counter(day for _, day in live_account_days(dagster_setup.engine))
    [(day, _)] = days.most_common(1)  # a day on which several accounts sold
    tick_time = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(2), dt.UTC)
    [request] = evaluate(dagster_setup.defs, dagster_setup.instance, tick_time)
    assert request.partition_key == day.isoformat()
    result = dagster_setup.daily_job().execute_in_process(
        instance=dagster_setup.instance, partition_key=request.partition_key, tags=request.tags
    )
    assert result.success
    accounts = {code for code, d in live_account_days(dagster_setup.engine) if d == day}
    assert len(accounts) >= 2
    for code in accounts:
        csv = dagster_setup.daily_file(code, day, "csv")
        assert csv.read_bytes() == oracle_account_day_csv(dagster_setup.url, code, day)
        assert dagster_setup.daily_file(code, day, "xlsx").exists()
