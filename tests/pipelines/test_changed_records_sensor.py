"""`changed_records_sensor` ticks on a real instance and PostgreSQL, and the runs it asks for."""

from __future__ import annotations

import datetime as dt
import uuid

import dagster as dg
import polars as pl
import sqlalchemy as sa

from pipelines.sensors.changed_records import RANGE_END_TAG, RANGE_START_TAG, plan_tick
from record_exports.schema import bookkeeping_records, record_changes
from record_exports.seed import account_id
from tests.dagster_support import Setup, busiest_partitions
from tests.factories import count_rows, oracle_account_day_csv

SENSOR = "changed_records_sensor"


def tick(setup: Setup) -> dg.SensorResult:
    with dg.build_sensor_context(
        instance=setup.instance, definitions=setup.defs, resources=setup.resources
    ) as context:
        result = setup.defs.resolve_sensor_def(SENSOR)(context)
    assert isinstance(result, dg.SensorResult)
    assert result.cursor is None  # its state is the record_changes table
    return result


def skip_text(result: dg.SensorResult) -> str:
    return result.skip_reason.skip_message or "" if result.skip_reason else ""


def run(setup: Setup, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """The requested run, executed as the daemon would launch it: its partition, config, tags."""
    return setup.daily_job().execute_in_process(
        instance=setup.instance,
        partition_key=request.partition_key,
        run_config=request.run_config,
        tags=request.tags,
    )


def edit(
    setup: Setup, code: str, day: dt.date, *, updated_at: dt.datetime, **values: object
) -> str:
    """Change one live record of an account-day the way the web app does; returns its id."""
    r = bookkeeping_records.c
    with setup.engine.begin() as connection:
        record_id = connection.execute(
            sa.select(r.id)
            .where(r.account_id == account_id(code), r.sale_date == day, r.deleted_at.is_(None))
            .order_by(r.id)
            .limit(1)
        ).scalar_one()
        connection.execute(
            sa.update(bookkeeping_records)
            .where(r.id == record_id)
            .values(updated_at=updated_at, **values)
        )
    return str(record_id)


def accounts_of(request: dg.RunRequest) -> list[str]:
    codes: list[str] = request.run_config["ops"]["daily_account_exports"]["config"]["account_codes"]
    return codes


def clear_changes(setup: Setup) -> None:
    with setup.engine.begin() as connection:
        connection.execute(sa.delete(record_changes))


def mtimes(setup: Setup) -> dict[str, int]:
    return {str(path): path.stat().st_mtime_ns for path in setup.daily_files()}


def test_a_changed_record_rewrites_only_its_file(dagster_setup: Setup) -> None:
    (code, day), *_ = busiest_partitions(dagster_setup.engine, 1)
    assert dagster_setup.materialize(day - dt.timedelta(days=1), day + dt.timedelta(days=1)).success
    first = tick(dagster_setup)  # the seeded changes of days never exported are dropped
    assert not first.run_requests and "never exported" in skip_text(first)
    assert skip_text(tick(dagster_setup)) == "no changes"
    before = mtimes(dagster_setup)
    assert len(before) >= 8

    # Stamped a year in the past: the log, not updated_at, says what changed.
    edited = edit(
        dagster_setup,
        code,
        day,
        updated_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC),
        item_name="EDITED",
    )
    result = tick(dagster_setup)
    [request] = result.run_requests or []
    assert request.partition_key == day.isoformat()
    assert request.run_config == {
        "ops": {"daily_account_exports": {"config": {"account_codes": [code]}}}
    }
    assert request.run_key and request.run_key.startswith(f"changed-records-{day}-through-")

    assert run(dagster_setup, request).success

    csv = dagster_setup.daily_file(code, day, "csv")
    assert csv.read_bytes() == oracle_account_day_csv(dagster_setup.url, code, day)
    assert pl.read_csv(csv).filter(pl.col("id") == edited)["item_name"].to_list() == ["EDITED"]
    after = mtimes(dagster_setup)
    changed = {path for path in after if after[path] != before.get(path)}
    mine = {str(dagster_setup.daily_file(code, day, ext)) for ext in ("csv", "xlsx")}
    assert changed == mine | {f"{path}.manifest.json" for path in mine}
    assert count_rows(dagster_setup.engine, "record_changes") == 0
    assert skip_text(tick(dagster_setup)) == "no changes"


def test_future_dated_and_backdated_edits_are_both_seen(dagster_setup: Setup) -> None:
    """The old sensor walked updated_at from a cursor: a row stamped in the future hid every
    edit made before that time. The change log has no such blind spot."""
    (code_a, day_a), (code_b, day_b) = busiest_partitions(dagster_setup.engine, 2)
    for day in {day_a, day_b}:
        assert dagster_setup.materialize(day).success
    clear_changes(dagster_setup)
    edit(dagster_setup, code_a, day_a, updated_at=dt.datetime(2031, 1, 1, tzinfo=dt.UTC))
    edit(dagster_setup, code_b, day_b, updated_at=dt.datetime(2001, 1, 1, tzinfo=dt.UTC))
    requested = {
        (request.partition_key, tuple(accounts_of(request)))
        for request in tick(dagster_setup).run_requests or []
    }
    if day_a == day_b:
        assert requested == {(day_a.isoformat(), tuple(sorted({code_a, code_b})))}
    else:
        assert requested == {(day_a.isoformat(), (code_a,)), (day_b.isoformat(), (code_b,))}


def test_a_day_with_a_run_in_flight_waits_for_it(dagster_setup: Setup) -> None:
    """A backfill run of a range is in flight: a change of a day inside it waits, so no second
    run overtakes it; once the backfill has ended, the change is exported."""
    [(code, day)] = busiest_partitions(dagster_setup.engine, 1)
    assert dagster_setup.materialize(day).success
    clear_changes(dagster_setup)
    in_flight = dagster_setup.instance.create_run_for_job(
        dagster_setup.daily_job(),
        tags={
            RANGE_START_TAG: (day - dt.timedelta(days=3)).isoformat(),
            RANGE_END_TAG: (day + dt.timedelta(days=3)).isoformat(),
        },
        status=dg.DagsterRunStatus.STARTED,
    )
    edit(dagster_setup, code, day, updated_at=dt.datetime.now(dt.UTC))
    waiting = tick(dagster_setup)
    assert not waiting.run_requests
    assert "wait for runs in flight" in skip_text(waiting)
    assert count_rows(dagster_setup.engine, "record_changes") == 1  # kept for later

    dagster_setup.instance.report_run_failed(in_flight)
    [request] = tick(dagster_setup).run_requests or []
    assert request.partition_key == day.isoformat()


def test_changes_of_days_never_exported_are_dropped(dagster_setup: Setup) -> None:
    clear_changes(dagster_setup)
    today = dt.datetime.now(dt.UTC).date()
    with dagster_setup.engine.begin() as connection:
        template = connection.execute(sa.select(bookkeeping_records).limit(1)).mappings().one()
        connection.execute(
            sa.insert(bookkeeping_records),
            [
                {**template, "id": str(uuid.uuid4()), "sale_date": day}
                for day in (
                    today,  # no partition yet: the nightly run exports it tomorrow
                    today + dt.timedelta(days=3),
                    dt.date(2023, 6, 1),  # before the first partition
                    dt.date(2026, 2, 2),  # a partition never materialized
                )
            ],
        )
    result = tick(dagster_setup)
    assert not result.run_requests
    assert "dropped 4 change(s) of 4 day(s) never exported" in skip_text(result)
    assert count_rows(dagster_setup.engine, "record_changes") == 0


def test_a_failed_re_export_is_not_requested_again_and_the_tick_says_so(
    dagster_setup: Setup,
) -> None:
    [(code, day)] = busiest_partitions(dagster_setup.engine, 1)
    assert dagster_setup.materialize(day).success
    clear_changes(dagster_setup)
    edit(dagster_setup, code, day, updated_at=dt.datetime.now(dt.UTC), item_name="x")
    [request] = tick(dagster_setup).run_requests or []
    blocker = dagster_setup.daily_file(code, day, "csv").parent
    for path in blocker.iterdir():
        path.unlink()
    blocker.rmdir()
    blocker.write_text("in the way")
    result = dagster_setup.daily_job().execute_in_process(
        instance=dagster_setup.instance,
        partition_key=request.partition_key,
        run_config=request.run_config,
        tags={**request.tags, "dagster/run_key": str(request.run_key)},
        raise_on_error=False,
    )
    assert not result.success

    again = tick(dagster_setup)
    assert not again.run_requests
    assert "failed re-export" in skip_text(again)
    assert count_rows(dagster_setup.engine, "record_changes") == 1


def test_tick_text_names_accounts_days_and_counts(dagster_setup: Setup) -> None:
    (code, day), *_ = busiest_partitions(dagster_setup.engine, 1)
    assert dagster_setup.materialize(day).success
    clear_changes(dagster_setup)
    r = bookkeeping_records.c
    with dagster_setup.engine.begin() as connection:
        for name in ("one", "two"):  # two statements: two changes of one account-day
            connection.execute(
                sa.update(bookkeeping_records)
                .where(r.account_id == account_id(code), r.sale_date == day)
                .values(item_name=name)
            )
    plan = plan_tick(
        dagster_setup.engine,
        dagster_setup.instance,
        dagster_setup.defs.resolve_job_def("daily_account_exports_job").partitions_def,  # type: ignore[arg-type]
        dg.AssetKey("daily_account_exports"),
    )
    assert plan.lines() == [f"re-exporting {code} {day} (2 changes)"]
    assert [accounts_of(request) for request in plan.run_requests] == [[code]]
