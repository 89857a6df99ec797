"""The change log the database keeps: triggers on both databases, exact deletes."""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from record_exports.change_log import (
    change_ids_by_account_day,
    delete_changes,
    pending_changes,
)
from record_exports.schema import bookkeeping_records, record_changes
from tests.factories import add_account, insert_records, record

DAY = dt.date(2024, 3, 5)


def logged(engine: Engine) -> list[tuple[str, dt.date]]:
    return [(c.account_code or "?", c.sale_date) for c in pending_changes(engine, 1000)]


def clear(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.delete(record_changes))


def test_every_insert_update_and_delete_logs_its_account_days(engine: Engine) -> None:
    one, two = add_account(engine, "ACC1"), add_account(engine, "ACC2")
    insert_records(engine, [record(one, n, sale_date=DAY) for n in range(3)])
    assert set(logged(engine)) == {("ACC1", DAY)}
    clear(engine)

    r = bookkeeping_records.c
    with engine.begin() as connection:
        # A backdated edit: the log does not care what updated_at says.
        connection.execute(
            sa.update(bookkeeping_records)
            .where(r.id == record(one, 0)["id"])
            .values(item_name="edited", updated_at=dt.datetime(1999, 1, 1, tzinfo=dt.UTC))
        )
    assert logged(engine) == [("ACC1", DAY)]
    clear(engine)

    with engine.begin() as connection:  # moved to another account and day: both logged
        connection.execute(
            sa.update(bookkeeping_records)
            .where(r.id == record(one, 1)["id"])
            .values(account_id=two, sale_date=DAY + dt.timedelta(days=1))
        )
    assert set(logged(engine)) == {("ACC1", DAY), ("ACC2", DAY + dt.timedelta(days=1))}
    clear(engine)

    with engine.begin() as connection:
        connection.execute(sa.delete(bookkeeping_records).where(r.id == record(one, 2)["id"]))
    assert logged(engine) == [("ACC1", DAY)]


def test_ids_by_account_day_and_exact_deletes(engine: Engine) -> None:
    one, two = add_account(engine, "ACC1"), add_account(engine, "ACC2")
    insert_records(engine, [record(one, 1, sale_date=DAY)])
    insert_records(engine, [record(two, 2, sale_date=DAY)])
    insert_records(engine, [record(one, 3, sale_date=DAY + dt.timedelta(days=40))])
    found = change_ids_by_account_day(engine, DAY, DAY + dt.timedelta(days=1))
    assert set(found) == {(one, DAY), (two, DAY)}
    assert set(change_ids_by_account_day(engine, DAY, DAY, [two])) == {(two, DAY)}

    later = record(one, 4, sale_date=DAY)
    insert_records(engine, [later])  # a change after the read: not among the ids read
    assert delete_changes(engine, found[(one, DAY)] + found[(two, DAY)]) == 2
    assert sorted(logged(engine)) == [("ACC1", DAY), ("ACC1", DAY + dt.timedelta(days=40))]
    assert delete_changes(engine, found[(one, DAY)]) == 0  # already gone: no error


def test_ids_are_never_reused(engine: Engine) -> None:
    """SQLite would hand out a deleted highest rowid again without AUTOINCREMENT; a reused id
    could make a new change look like one already requested."""
    one = add_account(engine, "ACC1")
    insert_records(engine, [record(one, 1, sale_date=DAY)])
    [first] = pending_changes(engine, 10)
    delete_changes(engine, [first.id])
    insert_records(engine, [record(one, 2, sale_date=DAY)])
    [second] = pending_changes(engine, 10)
    assert second.id > first.id
