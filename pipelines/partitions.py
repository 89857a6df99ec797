"""The partitions of `daily_account_exports`: one per account (dynamic) × sale day.

Keys read `<account_code>|<YYYY-MM-DD>`: Dagster orders the dimensions by name, and
"account" sorts before "day". Account codes cannot hold `|` (params.ACCOUNT_CODE_PATTERN).

Days start at 2025-11-29, the first sale day of the seeded data (seed.py spans
2025-11-29 .. 2026-11-28); the last day is yesterday in `EXPORTS_TIMEZONE`, which is
why the definition is built with the time zone when the definitions are built instead
of at import.
"""

from __future__ import annotations

import datetime as dt

import dagster as dg

ACCOUNT_DIMENSION = "account"
DAY_DIMENSION = "day"
ACCOUNTS_PARTITIONS_NAME = "accounts"
FIRST_SALE_DAY = "2025-11-29"

accounts_partitions = dg.DynamicPartitionsDefinition(name=ACCOUNTS_PARTITIONS_NAME)


def sale_day_partitions(timezone: str) -> dg.DailyPartitionsDefinition:
    return dg.DailyPartitionsDefinition(start_date=FIRST_SALE_DAY, timezone=timezone)


def daily_account_partitions(timezone: str) -> dg.MultiPartitionsDefinition:
    return dg.MultiPartitionsDefinition(
        {ACCOUNT_DIMENSION: accounts_partitions, DAY_DIMENSION: sale_day_partitions(timezone)}
    )


def partition_key(account_code: str, day: dt.date) -> dg.MultiPartitionKey:
    return dg.MultiPartitionKey({ACCOUNT_DIMENSION: account_code, DAY_DIMENSION: day.isoformat()})


def split_partition_key(key: str | dg.MultiPartitionKey) -> tuple[str, dt.date]:
    """(account_code, sale day) of a partition key, given as a key object or its string."""
    if isinstance(key, dg.MultiPartitionKey):
        dimensions = key.keys_by_dimension
        return dimensions[ACCOUNT_DIMENSION], dt.date.fromisoformat(dimensions[DAY_DIMENSION])
    account_code, day = str(key).split("|")
    return account_code, dt.date.fromisoformat(day)


def existing_days(
    partitions_def: dg.MultiPartitionsDefinition, current_time: dt.datetime | None = None
) -> tuple[dt.date, dt.date | None]:
    """The first and last sale day that has a partition now (last is None before the first
    day is over)."""
    days = partitions_def.get_partitions_def_for_dimension(DAY_DIMENSION)
    with dg.partition_loading_context(effective_dt=current_time):
        last = days.get_last_partition_key()
    return dt.date.fromisoformat(FIRST_SALE_DAY), dt.date.fromisoformat(last) if last else None
