"""`account_partitions_sensor`: a partition of `daily_account_exports` for every account.

Each tick compares the `accounts` table with the registered partitions and adds the
missing ones, so a new account gets daily files from its first night on. The accounts
table is small; reading it whole is cheaper than keeping a cursor in step with it.
Partitions are never removed: files of a deleted account stay addressable.
"""

from __future__ import annotations

import dagster as dg
import sqlalchemy as sa

from pipelines.partitions import ACCOUNTS_PARTITIONS_NAME, accounts_partitions
from record_exports.params import ACCOUNT_CODE_PATTERN
from record_exports.schema import accounts
from resources.records_database import RecordsDatabase

INTERVAL_SECONDS = 60


def account_codes(records_database: RecordsDatabase) -> list[str]:
    with records_database.engine() as engine, engine.connect() as connection:
        return list(
            connection.execute(
                sa.select(accounts.c.account_code).order_by(accounts.c.account_code)
            ).scalars()
        )


@dg.sensor(
    name="account_partitions_sensor",
    minimum_interval_seconds=INTERVAL_SECONDS,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=__doc__,
)
def account_partitions_sensor(
    context: dg.SensorEvaluationContext, records_database: RecordsDatabase
) -> dg.SensorResult | dg.SkipReason:
    registered = set(context.instance.get_dynamic_partitions(ACCOUNTS_PARTITIONS_NAME))
    codes = account_codes(records_database)
    unusable = [code for code in codes if not ACCOUNT_CODE_PATTERN.fullmatch(code)]
    for code in unusable:
        context.log.warning(f"account code {code[:80]!r} cannot name a partition; skipped")
    new = [code for code in codes if code not in registered and code not in unusable]
    if not new:
        return dg.SkipReason(f"all {len(codes) - len(unusable)} accounts have partitions")
    context.log.info(f"adding partitions for {len(new)} account(s): {', '.join(new[:20])}")
    return dg.SensorResult(dynamic_partitions_requests=[accounts_partitions.build_add_request(new)])
