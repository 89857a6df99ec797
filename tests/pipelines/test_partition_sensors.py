"""`account_partitions_sensor` and `changed_records_sensor` ticks, real PostgreSQL and instance."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import dagster as dg
import polars as pl
import sqlalchemy as sa

from pipelines.partitions import partition_key
from record_exports.schema import accounts, bookkeeping_records
from record_exports.seed import account_id
from tests.dagster_support import Setup, busiest_partitions


def tick(setup: Setup, name: str, cursor: str | None = None) -> dg.SensorResult | dg.SkipReason:
    with dg.build_sensor_context(
        instance=setup.instance, cursor=cursor, definitions=setup.defs, resources=setup.resources
    ) as context:
        result = setup.defs.resolve_sensor_def(name)(context)
    assert isinstance(result, dg.SensorResult | dg.SkipReason)
    return result


def test_account_partitions_for_every_account_new_ones_included(dagster_setup: Setup) -> None:
    first = tick(dagster_setup, "account_partitions_sensor")
    assert isinstance(first, dg.SensorResult)
    [add] = first.dynamic_partitions_requests or []
    assert isinstance(add, dg.AddDynamicPartitionsRequest)
    assert (add.partitions_def_name, list(add.partition_keys)) == (
        "accounts",
        ["ACC1", "ACC2", "ACC3"],
    )
    dagster_setup.instance.add_dynamic_partitions("accounts", list(add.partition_keys))

    assert isinstance(tick(dagster_setup, "account_partitions_sensor"), dg.SkipReason)

    with dagster_setup.engine.begin() as connection:
        connection.execute(
            sa.insert(accounts),
            [
                {"id": account_id("ACC9"), "account_code": "ACC9", "name": "new"},
                {"id": account_id("bad|code"), "account_code": "bad|code", "name": "unusable"},
            ],
        )
    later = tick(dagster_setup, "account_partitions_sensor")
    assert isinstance(later, dg.SensorResult)
    [add] = later.dynamic_partitions_requests or []
    assert list(add.partition_keys) == ["ACC9"]  # type: ignore[union-attr]


def change_time(connection: sa.Connection) -> dt.datetime:
    """Now, or just after the newest change: seeded records have `updated_at` up to three
    weeks after their sale day, which can lie in the future of the test machine's clock."""
    newest = connection.execute(sa.select(sa.func.max(bookkeeping_records.c.updated_at))).scalar()
    return max(dt.datetime.now(dt.UTC), newest + dt.timedelta(milliseconds=1))


def touch(setup: Setup, code: str, day: dt.date, *, delete: bool = False) -> str:
    """Change one live record of a partition the way the web app does; returns its id."""
    r = bookkeeping_records.c
    with setup.engine.begin() as connection:
        record_id = connection.execute(
            sa.select(r.id)
            .where(r.account_id == account_id(code), r.sale_date == day, r.deleted_at.is_(None))
            .order_by(r.id)
            .limit(1)
        ).scalar_one()
        now = change_time(connection)
        values = {"updated_at": now, **({"deleted_at": now} if delete else {"item_name": "EDITED"})}
        connection.execute(sa.update(bookkeeping_records).where(r.id == record_id).values(values))
    return str(record_id)


def changed_tick(setup: Setup, cursor: str | None) -> tuple[list[dg.RunRequest], str]:
    result = tick(setup, "changed_records_sensor", cursor)
    assert isinstance(result, dg.SensorResult) and result.cursor is not None
    return list(result.run_requests or []), result.cursor


def test_changed_records_re_export_stale_partitions_once(dagster_setup: Setup) -> None:
    dagster_setup.register_accounts()
    (code_a, day_a), (code_b, day_b), (code_c, day_c) = busiest_partitions(dagster_setup.engine, 3)
    key_a, key_b = str(partition_key(code_a, day_a)), str(partition_key(code_b, day_b))
    for key in (key_a, key_b):
        assert dagster_setup.materialize(key, ["csv"]).success

    requests, cursor = changed_tick(dagster_setup, None)
    assert not requests  # the first tick starts at the newest change
    assert json.loads(cursor)["position"]

    edited = touch(dagster_setup, code_a, day_a)
    deleted = touch(dagster_setup, code_b, day_b, delete=True)
    touch(dagster_setup, code_c, day_c)  # never exported: nothing to go stale

    requests, cursor = changed_tick(dagster_setup, cursor)
    assert sorted(str(r.partition_key) for r in requests) == sorted([key_a, key_b])
    assert all(
        r.run_key and r.run_key.startswith(f"changed-records-{r.partition_key}-") for r in requests
    )
    assert changed_tick(dagster_setup, cursor)[0] == []  # seen once, requested once

    for request in requests:  # the re-export brings the files up to date
        assert dagster_setup.materialize(str(request.partition_key), ["csv"]).success
    csv_a = pl.read_csv(
        dagster_setup.exports / "daily" / code_a / f"{day_a:%Y/%m}" / f"{code_a}_{day_a}.csv"
    )
    assert csv_a.filter(pl.col("id") == edited)["item_name"].to_list() == ["EDITED"]
    csv_b = pl.read_csv(
        dagster_setup.exports / "daily" / code_b / f"{day_b:%Y/%m}" / f"{code_b}_{day_b}.csv"
    )
    assert deleted not in csv_b["id"].to_list()


def test_a_change_during_an_in_flight_run_waits_for_it(dagster_setup: Setup) -> None:
    """A second run must not overtake the one in flight: it waits, then runs once."""
    dagster_setup.register_accounts()
    [(code, day)] = busiest_partitions(dagster_setup.engine, 1)
    key = str(partition_key(code, day))
    assert dagster_setup.materialize(key, ["csv"]).success
    _, cursor = changed_tick(dagster_setup, None)

    in_flight = dagster_setup.instance.create_run_for_job(
        dagster_setup.daily_job(),
        tags={"dagster/partition": key},
        status=dg.DagsterRunStatus.STARTED,
    )
    touch(dagster_setup, code, day)
    requests, cursor = changed_tick(dagster_setup, cursor)
    assert requests == []
    assert list(json.loads(cursor)["deferred"]) == [key]
    requests, cursor = changed_tick(dagster_setup, cursor)  # still in flight
    assert requests == []

    dagster_setup.instance.report_run_failed(in_flight)
    requests, cursor = changed_tick(dagster_setup, cursor)
    assert [str(r.partition_key) for r in requests] == [key]
    assert json.loads(cursor)["deferred"] == {}
    assert changed_tick(dagster_setup, cursor)[0] == []


def test_changes_outside_existing_partitions_are_dropped(dagster_setup: Setup) -> None:
    dagster_setup.register_accounts()
    _, cursor = changed_tick(dagster_setup, None)
    today = dt.datetime.now(dt.UTC).date()
    with dagster_setup.engine.begin() as connection:
        template = connection.execute(sa.select(bookkeeping_records).limit(1)).mappings().one()
        now = change_time(connection)
        connection.execute(
            sa.insert(bookkeeping_records),
            [
                {
                    **template,
                    "id": str(uuid.uuid4()),
                    "sale_date": day,
                    "updated_at": now,
                }
                for day in (today, today + dt.timedelta(days=3), dt.date(2024, 1, 1))
            ],
        )
    requests, new_cursor = changed_tick(dagster_setup, cursor)
    assert requests == []
    assert json.loads(new_cursor)["position"] != json.loads(cursor)["position"]
