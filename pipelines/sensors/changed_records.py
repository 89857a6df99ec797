"""`changed_records_sensor`: re-exports daily partitions whose records changed.

What "changed after the partition was last exported" means here: every change to a
record (its `updated_at` moves; soft deletes set `deleted_at` and move it too) is seen
exactly once, in `(updated_at, id)` order, through the index of that name; the cursor
holds the position of the last change seen. A changed partition is exported again
unless it has never been exported (then it has no file to go stale; the nightly
schedule or a backfill creates it). Comparing the change time with the time of the
last materialization is not safe: an export reads a snapshot taken some time after its
run started, and a change stamped before that may commit after it. The only export
known to contain a change is one that starts after the change was seen.

Hence runs in flight: when a change lands on a partition whose run is queued or
running, that run may have read before the change, and a second run started now could
finish first and be overwritten by the older file. So the partition waits in the
cursor's `deferred` map until no run of it is in flight, and is requested then.

Changes to partitions that do not exist (today's sale day, future days, days before
the first partition, accounts not registered yet) are dropped: the nightly schedule
exports a day after it ends, reading every change made until then.

On its first tick the sensor starts from the newest change: history is the job of
backfills. Each tick reads at most `CHANGES_PER_TICK` changes; a bulk update is worked
off over several ticks. Run keys carry the partition and the position of its newest
change, so a repeated tick never launches a partition twice for the same change, while
a later change gets a new run.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.partitions import (
    ACCOUNTS_PARTITIONS_NAME,
    existing_days,
    partition_key,
    split_partition_key,
)
from record_exports.schema import accounts, bookkeeping_records
from resources.records_database import RecordsDatabase

CHANGES_PER_TICK = 5000
INTERVAL_SECONDS = 30
PARTITION_TAG = "dagster/partition"
IN_FLIGHT_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@dataclass(frozen=True, order=True)
class Position:
    """A point in the `(updated_at, id)` order of record changes."""

    updated_at: dt.datetime
    id: str

    def text(self) -> str:
        return f"{self.updated_at.isoformat()}/{self.id}"

    @classmethod
    def parse(cls, text: str) -> Position:
        stamp, record_id = text.split("/", 1)
        return cls(dt.datetime.fromisoformat(stamp), record_id)


@dataclass
class ChangesCursor:
    """Sensor state: the last change seen and partitions waiting for in-flight runs
    (partition key → position of its newest change)."""

    position: Position | None = None
    deferred: dict[str, str] = field(default_factory=dict)

    def dump(self) -> str:
        return json.dumps(
            {"position": self.position.text() if self.position else None, "deferred": self.deferred}
        )

    @classmethod
    def load(cls, cursor: str | None) -> ChangesCursor:
        if not cursor:
            return cls()
        raw = json.loads(cursor)
        position = Position.parse(raw["position"]) if raw.get("position") else None
        return cls(position, dict(raw.get("deferred") or {}))


@dataclass(frozen=True)
class Change:
    position: Position
    account_code: str
    sale_date: dt.date


def _as_date(value: Any) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def newest_position(engine: Engine) -> Position | None:
    r = bookkeeping_records.c
    query = sa.select(r.updated_at, r.id).order_by(r.updated_at.desc(), r.id.desc()).limit(1)
    with engine.connect() as connection:
        row = connection.execute(query).first()
    return Position(row.updated_at, str(row.id)) if row else None


def changes_after(engine: Engine, position: Position, limit: int) -> list[Change]:
    """Changes past `position`, oldest first: a range scan of the `(updated_at, id)` index."""
    r, a = bookkeeping_records.c, accounts.c
    query = (
        sa.select(r.updated_at, r.id, a.account_code, r.sale_date)
        .join_from(bookkeeping_records, accounts, a.id == r.account_id)
        .where(
            sa.tuple_(r.updated_at, r.id)
            > sa.tuple_(
                sa.bindparam("after_updated_at", position.updated_at, type_=r.updated_at.type),
                sa.bindparam("after_id", position.id, type_=r.id.type),
            )
        )
        .order_by(r.updated_at, r.id)
        .limit(limit)
    )
    with engine.connect() as connection:
        return [
            Change(Position(row.updated_at, str(row.id)), row.account_code, _as_date(row.sale_date))
            for row in connection.execute(query)
        ]


def partitions_in_flight(instance: dg.DagsterInstance, keys: Iterable[str]) -> set[str]:
    """Keys with a queued or running run of any job (schedule, sensor, UI backfill)."""
    wanted = sorted(keys)
    if not wanted:
        return set()
    records = instance.get_run_records(
        dg.RunsFilter(statuses=IN_FLIGHT_STATUSES, tags={PARTITION_TAG: wanted})
    )
    return {record.dagster_run.tags[PARTITION_TAG] for record in records}


def exported_partitions(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, keys: Iterable[str]
) -> set[str]:
    return set(
        instance.get_latest_storage_id_by_partition(
            asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=set(keys)
        )
    )


def changed_partitions(
    changes: Iterable[Change],
    registered_accounts: set[str],
    first_day: dt.date,
    last_day: dt.date | None,
) -> dict[str, str]:
    """Partition key → position of its newest change, for partitions that exist."""
    newest: dict[str, str] = {}
    for change in changes:
        if change.account_code not in registered_accounts or last_day is None:
            continue
        if not first_day <= change.sale_date <= last_day:
            continue
        key = str(partition_key(change.account_code, change.sale_date))
        newest[key] = change.position.text()
    return newest


@dataclass
class TickPlan:
    run_requests: list[dg.RunRequest]
    cursor: ChangesCursor
    skipped_never_exported: int = 0


def plan_tick(
    context: dg.SensorEvaluationContext,
    engine: Engine,
    partitions_def: dg.MultiPartitionsDefinition,
    asset_key: dg.AssetKey,
) -> TickPlan:
    state = ChangesCursor.load(context.cursor)
    if state.position is None:
        return TickPlan([], ChangesCursor(newest_position(engine) or _origin()))
    changes = changes_after(engine, state.position, CHANGES_PER_TICK)
    position = changes[-1].position if changes else state.position
    registered = set(context.instance.get_dynamic_partitions(ACCOUNTS_PARTITIONS_NAME))
    first_day, last_day = existing_days(partitions_def)
    candidates = {**state.deferred, **changed_partitions(changes, registered, first_day, last_day)}
    busy = partitions_in_flight(context.instance, candidates)
    exported = exported_partitions(context.instance, asset_key, set(candidates) - busy)
    plan = TickPlan([], ChangesCursor(position, {}))
    for key, newest in sorted(candidates.items()):
        if key in busy:
            plan.cursor.deferred[key] = newest
        elif key in exported:
            account_code, day = split_partition_key(key)
            plan.run_requests.append(
                dg.RunRequest(
                    run_key=f"changed-records-{key}-{newest}",
                    partition_key=partition_key(account_code, day),
                    tags={"changed_records_position": newest},
                )
            )
        else:
            plan.skipped_never_exported += 1
    return plan


def _origin() -> Position:
    """The position before any change, for a sensor started on an empty table."""
    return Position(dt.datetime(1970, 1, 1, tzinfo=dt.UTC), str(uuid.UUID(int=0)))


def build_changed_records_sensor(
    job: dg.UnresolvedAssetJobDefinition,
    partitions_def: dg.MultiPartitionsDefinition,
    asset_key: dg.AssetKey,
) -> dg.SensorDefinition:
    @dg.sensor(
        name="changed_records_sensor",
        job=job,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Re-exports daily partitions whose records changed since their export.",
    )
    def changed_records_sensor(
        context: dg.SensorEvaluationContext, records_database: RecordsDatabase
    ) -> dg.SensorResult:
        with records_database.engine() as engine:
            plan = plan_tick(context, engine, partitions_def, asset_key)
        if plan.skipped_never_exported:
            context.log.info(
                f"{plan.skipped_never_exported} changed partition(s) never exported; left to "
                "the nightly schedule or a backfill"
            )
        if not plan.run_requests:
            waiting = len(plan.cursor.deferred)
            reason = f"no stale partitions ({waiting} waiting for runs in flight)"
            return dg.SensorResult(skip_reason=reason, cursor=plan.cursor.dump())
        return dg.SensorResult(run_requests=plan.run_requests, cursor=plan.cursor.dump())

    return changed_records_sensor
