"""`nightly_exports`: its run requests for given evaluation times, time zones included."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import dagster as dg
import pytest
from sqlalchemy.engine import Engine

from pipelines.definitions import build_definitions
from tests.dagster_support import Setup


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
def test_yesterday_for_every_account_in_the_schedule_time_zone(
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
    dagster_instance.add_dynamic_partitions("accounts", ["ACC2", "ACC1"])

    requests = evaluate(defs, dagster_instance, local_time.replace(tzinfo=ZoneInfo(timezone)))

    assert [r.partition_key for r in requests] == [f"ACC1|{expected_day}", f"ACC2|{expected_day}"]
    assert [r.run_key for r in requests] == [
        f"nightly-{expected_day}-ACC1",
        f"nightly-{expected_day}-ACC2",
    ]


def test_the_time_zone_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPORTS_TIMEZONE", "Europe/Berlin")
    defs = build_definitions()
    assert defs.resolve_schedule_def("nightly_exports").execution_timezone == "Europe/Berlin"
    monkeypatch.delenv("EXPORTS_TIMEZONE")
    assert build_definitions().resolve_schedule_def("nightly_exports").execution_timezone == "UTC"


def test_no_accounts_skips(dagster_instance: dg.DagsterInstance) -> None:
    defs = build_definitions(timezone="UTC")
    schedule = defs.resolve_schedule_def("nightly_exports")
    context = dg.build_schedule_context(
        instance=dagster_instance,
        scheduled_execution_time=dt.datetime(2026, 3, 10, 2, tzinfo=dt.UTC),
        repository_def=defs.get_repository_def(),
    )
    data = schedule.evaluate_tick(context)
    assert not data.run_requests
    assert "no accounts" in (data.skip_message or "")


def test_requested_partition_runs(dagster_setup: Setup, pg_engine: Engine) -> None:
    """The schedule's request is a partition the daily job accepts, and it writes the files."""
    dagster_setup.register_accounts()
    [request, *_] = evaluate(
        dagster_setup.defs, dagster_setup.instance, dt.datetime(2026, 6, 2, 2, tzinfo=dt.UTC)
    )
    assert request.partition_key is not None
    assert dagster_setup.materialize(request.partition_key).success
    code = request.partition_key.split("|")[0]
    assert (
        dagster_setup.exports / "daily" / code / "2026" / "06" / f"{code}_2026-06-01.csv"
    ).exists()
