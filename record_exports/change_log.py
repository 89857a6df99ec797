"""Reading and clearing `record_changes`, the log the database keeps of changed account-days.

Triggers on `bookkeeping_records` (schema.py) add a row with the account and sale day of
every insert, update and delete; its id comes from the database, so no machine's clock
decides anything. A daily export reads the ids pending for its days *before* it reads the
records, and deletes exactly those ids once its files are written: a change committed
after that read keeps its row, and another export follows. Deleting "every id up to the
highest seen" would not be safe: a transaction can take a lower id and commit later.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from record_exports.schema import accounts, record_changes

DELETE_CHUNK = 500

AccountDay = tuple[str, dt.date]
"""(account id, sale day)."""


@dataclass(frozen=True)
class PendingChange:
    id: int
    account_id: str
    account_code: str | None
    sale_date: dt.date


def as_date(value: Any) -> dt.date:
    """A date from the driver: a date on PostgreSQL, ISO text on SQLite."""
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


def pending_changes(engine: Engine, limit: int) -> list[PendingChange]:
    """The oldest `limit` change rows, with their account codes (None: account unknown)."""
    c, a = record_changes.c, accounts.c
    query = (
        sa.select(c.id, c.account_id, a.account_code, c.sale_date)
        .select_from(record_changes.outerjoin(accounts, a.id == c.account_id))
        .order_by(c.id)
        .limit(limit)
    )
    with engine.connect() as connection:
        return [
            PendingChange(
                int(row.id), str(row.account_id), row.account_code, as_date(row.sale_date)
            )
            for row in connection.execute(query)
        ]


def change_ids_by_account_day(
    engine: Engine, first_day: dt.date, last_day: dt.date, account_ids: Sequence[str] = ()
) -> dict[AccountDay, list[int]]:
    """Pending change ids of the days `first_day`..`last_day` (of `account_ids` only, when
    given), by account and day."""
    c = record_changes.c
    query = sa.select(c.id, c.account_id, c.sale_date).where(
        c.sale_date >= first_day, c.sale_date <= last_day
    )
    if account_ids:
        query = query.where(c.account_id.in_(list(account_ids)))
    found: dict[AccountDay, list[int]] = defaultdict(list)
    with engine.connect() as connection:
        for row in connection.execute(query):
            found[(str(row.account_id), as_date(row.sale_date))].append(int(row.id))
    return dict(found)


def delete_changes(engine: Engine, ids: Iterable[int]) -> int:
    """Delete exactly these change rows (ids another export already deleted are no error)."""
    pending = sorted(set(ids))
    deleted = 0
    with engine.begin() as connection:
        for start in range(0, len(pending), DELETE_CHUNK):
            chunk = pending[start : start + DELETE_CHUNK]
            result = connection.execute(
                sa.delete(record_changes).where(record_changes.c.id.in_(chunk))
            )
            deleted += result.rowcount or 0
    return deleted
