"""`changed_records_sensor`: re-exports exactly the account-days whose records changed.

What changed comes from `record_changes`, the log the records database keeps through
triggers (`record_exports.schema`, `record_exports.change_log`): one row per changed
(account, sale day), numbered by the database. No clock is consulted, so a future-dated
`updated_at`, clock skew between app servers or a backdated edit changes nothing.

Each tick reads the oldest pending rows (at most `CHANGES_PER_TICK`) and, per sale day:

- a run of that day is in flight (queued or running, a single day or a backfill range
  covering it): wait; that run may or may not have read the change, and its files must
  not be overtaken. The rows stay and are looked at again on the next tick;
- the day has been exported: request one run of the day for just the changed accounts
  (run config `account_codes`), with the run key `changed-records-<day>-through-<id>`
  (the newest change id), so a repeated tick launches nothing twice. The run deletes the
  rows it covered once its files are written; a change that lands after its read keeps
  its row and gets the next run;
- the day has never been exported (no partition yet, before `EXPORTS_FIRST_DAY`, or not
  materialized): delete those rows; the nightly run or a backfill will read the day whole.

The sensor keeps no cursor: its state is the `record_changes` table. A run requested for a
change that then fails leaves its rows; the tick text says so, and re-executing the run
(or the next change of that day) exports the day's accounts again.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

import dagster as dg
from sqlalchemy.engine import Engine

from assets.daily_account_exports import ASSET_NAME
from pipelines.partitions import existing_days, partition_day
from record_exports.change_log import PendingChange, delete_changes, pending_changes
from record_exports.daily_layout import names_a_folder
from record_exports.params import MAX_LIST_ITEMS
from resources.records_database import RecordsDatabase

CHANGES_PER_TICK = 20_000
RUNS_PER_TICK = 50
INTERVAL_SECONDS = 15
PARTITION_TAG = "dagster/partition"
RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
RUN_KEY_TAG = "dagster/run_key"
ACCOUNTS_TAG = "daily_exports/accounts"
IN_FLIGHT_STATUSES = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


@dataclass
class DayChanges:
    """The pending changes of one sale day: their ids, and how many per account."""

    day: dt.date
    ids: list[int] = field(default_factory=list)
    by_account: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def run_key(self) -> str:
        return f"changed-records-{self.day}-through-{max(self.ids)}"

    def summary(self) -> str:
        """`ACC3 2026-11-20 (2 changes)`, or a count when many accounts changed."""
        count = len(self.ids)
        noun = "change" if count == 1 else "changes"
        if len(self.by_account) <= 5:
            return f"{', '.join(sorted(self.by_account))} {self.day} ({count} {noun})"
        return f"{len(self.by_account)} accounts of {self.day} ({count} {noun})"


@dataclass
class TickPlan:
    run_requests: list[dg.RunRequest] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    failed_before: list[str] = field(default_factory=list)
    dropped_ids: list[int] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """What the tick did, one line each, for the tick's log."""
        return [
            *(f"re-exporting {text}" for text in self.requested),
            *(f"waiting for the run in flight of {text}" for text in self.waiting),
            *(f"not re-exported, its last run failed: {text}" for text in self.failed_before),
            *(f"dropped, never exported yet: {text}" for text in self.dropped[:20]),
        ]

    def skip_reason(self) -> str:
        if not (self.waiting or self.failed_before or self.dropped):
            return "no changes"
        parts = []
        if self.waiting:
            parts.append(f"{len(self.waiting)} day(s) wait for runs in flight")
        if self.failed_before:
            parts.append(
                f"{len(self.failed_before)} day(s) wait for a failed re-export to be re-executed"
            )
        if self.dropped:
            parts.append(
                f"dropped {len(self.dropped_ids)} change(s) of {len(self.dropped)} day(s) never "
                "exported (the nightly run or a backfill reads them whole)"
            )
        return "; ".join(parts)


def usable_code(account_code: str | None) -> bool:
    """A known account whose code can name a folder (a deleted account's is None)."""
    return account_code is not None and names_a_folder(account_code)


def by_day(changes: Iterable[PendingChange]) -> dict[dt.date, DayChanges]:
    days: dict[dt.date, DayChanges] = {}
    for change in changes:
        day = days.setdefault(change.sale_date, DayChanges(change.sale_date))
        day.ids.append(change.id)
        day.by_account[change.account_code or ""] += 1
    return days


def days_in_flight(instance: dg.DagsterInstance) -> list[tuple[dt.date, dt.date]]:
    """Sale-day ranges of queued and running runs (any job: the daily job, a backfill, a
    materialization launched from the asset page)."""
    ranges = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=IN_FLIGHT_STATUSES)):
        tags = record.dagster_run.tags
        first = tags.get(PARTITION_TAG) or tags.get(RANGE_START_TAG)
        last = tags.get(PARTITION_TAG) or tags.get(RANGE_END_TAG)
        try:
            if first and last:
                ranges.append((partition_day(first), partition_day(last)))
        except ValueError:
            continue  # a partition of something else
    return ranges


def exported_days(
    instance: dg.DagsterInstance, asset_key: dg.AssetKey, days: Iterable[dt.date]
) -> set[dt.date]:
    keys = {day.isoformat() for day in days}
    if not keys:
        return set()
    found = instance.get_latest_storage_id_by_partition(
        asset_key, dg.DagsterEventType.ASSET_MATERIALIZATION, partitions=keys
    )
    return {partition_day(key) for key in found}


def failed_run_keys(instance: dg.DagsterInstance, run_keys: Iterable[str]) -> set[str]:
    """Run keys already used by a run that failed (the daemon would skip a request again)."""
    failed = set()
    for key in run_keys:
        runs = instance.get_runs(dg.RunsFilter(tags={RUN_KEY_TAG: key}), limit=1)
        if runs and runs[0].status == dg.DagsterRunStatus.FAILURE:
            failed.add(key)
    return failed


def run_request(changes: DayChanges) -> dg.RunRequest:
    """A run of the day for just the changed accounts (all of them past the config's limit)."""
    codes = sorted(changes.by_account)
    config_codes = codes if len(codes) <= MAX_LIST_ITEMS else []
    return dg.RunRequest(
        run_key=changes.run_key(),
        partition_key=changes.day.isoformat(),
        run_config={"ops": {ASSET_NAME: {"config": {"account_codes": config_codes}}}},
        tags={ACCOUNTS_TAG: ", ".join(codes)[:200]},
    )


def plan_tick(
    engine: Engine,
    instance: dg.DagsterInstance,
    partitions_def: dg.DailyPartitionsDefinition,
    asset_key: dg.AssetKey,
    log: logging.Logger | dg.DagsterLogManager | None = None,
) -> TickPlan:
    plan = TickPlan()
    pending = pending_changes(engine, CHANGES_PER_TICK)
    usable = [c for c in pending if usable_code(c.account_code)]
    unusable = [c for c in pending if not usable_code(c.account_code)]
    if unusable and log is not None:
        log.warning(f"{len(unusable)} change(s) of accounts without a usable account code dropped")
    plan.dropped_ids += [c.id for c in unusable]
    days = by_day(usable)
    first, last = existing_days(partitions_def)
    # In flight first, exported second: a run that ends between the two checks has
    # recorded its materialization before it ended, so its day counts as exported.
    in_flight = days_in_flight(instance)
    exportable = [d for d in days if last is not None and first <= d <= last]
    exported = exported_days(instance, asset_key, exportable)
    candidates = []
    for day, changes in sorted(days.items()):
        if any(start <= day <= end for start, end in in_flight):
            plan.waiting.append(changes.summary())
        elif day in exported:
            candidates.append(changes)
        else:
            plan.dropped_ids += changes.ids
            plan.dropped.append(changes.summary())
    candidates = candidates[:RUNS_PER_TICK]
    failed = failed_run_keys(instance, [changes.run_key() for changes in candidates])
    for changes in candidates:
        if changes.run_key() in failed:
            plan.failed_before.append(f"{changes.summary()}, run key {changes.run_key()}")
        else:
            plan.run_requests.append(run_request(changes))
            plan.requested.append(changes.summary())
    return plan


def build_changed_records_sensor(
    job: dg.UnresolvedAssetJobDefinition,
    partitions_def: dg.DailyPartitionsDefinition,
    asset_key: dg.AssetKey,
) -> dg.SensorDefinition:
    @dg.sensor(
        name="changed_records_sensor",
        job=job,
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Re-exports the account-days whose records changed (record_changes log).",
    )
    def changed_records_sensor(
        context: dg.SensorEvaluationContext, records_database: RecordsDatabase
    ) -> dg.SensorResult:
        with records_database.engine() as engine:
            plan = plan_tick(engine, context.instance, partitions_def, asset_key, context.log)
            delete_changes(engine, plan.dropped_ids)
        for line in plan.lines():
            context.log.info(line)
        if not plan.run_requests:
            return dg.SensorResult(skip_reason=plan.skip_reason())
        return dg.SensorResult(run_requests=plan.run_requests)

    return changed_records_sensor
