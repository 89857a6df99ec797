"""The partitions of `daily_account_exports`: one per sale day, every account inside it.

Days run from `EXPORTS_FIRST_DAY` to yesterday in `EXPORTS_TIMEZONE` (a day gets its
partition once it is over), so the definition is built from both settings when the
definitions load, never at import. Accounts are not a dimension: one partition writes the
files of every account that sold that day. 1,000 accounts × 10 years are 3,653 partitions,
not 3.65 million, and a new account needs no registration.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg


def sale_day_partitions(first_day: dt.date, timezone: str) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=first_day.isoformat(), timezone=timezone)


def partition_day(key: str) -> dt.date:
    return dt.date.fromisoformat(key)


def existing_days(
    partitions_def: dg.DailyPartitionsDefinition, current_time: dt.datetime | None = None
) -> tuple[dt.date, dt.date | None]:
    """The first and last sale day that has a partition now (last is None before the first
    day is over)."""
    with dg.partition_loading_context(effective_dt=current_time):
        last = partitions_def.get_last_partition_key()
    first = partition_day(partitions_def.start.date().isoformat())
    return first, partition_day(last) if last else None
