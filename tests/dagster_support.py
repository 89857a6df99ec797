"""Fixtures for tests that run Dagster for real: a temporary instance, a seeded PostgreSQL
records database and the code location's definitions wired to both.

Registered as a pytest plugin by tests/conftest.py.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from pipelines.definitions import DAILY_JOB_NAME, build_definitions
from pipelines.sensors.changed_records import RANGE_END_TAG, RANGE_START_TAG
from record_exports.daily_layout import LOCKS_FOLDER
from record_exports.schema import accounts, bookkeeping_records
from record_exports.seed import seed_records
from resources.export_storage import ExportStorage
from resources.records_database import RecordsDatabase

SEED_RECORDS = 400
SEED_ACCOUNTS = 3


FIRST_DAY = dt.date(2024, 1, 1)
DAILY_ASSET = dg.AssetKey("daily_account_exports")


@dataclass
class Setup:
    """Everything a Dagster test touches."""

    url: str
    engine: Engine
    instance: dg.DagsterInstance
    exports: Path
    defs: dg.Definitions

    @property
    def resources(self) -> dict[str, object]:
        return {
            "records_database": RecordsDatabase(url=self.url),
            "export_storage": ExportStorage(root=str(self.exports)),
        }

    def daily_job(self) -> dg.JobDefinition:
        return self.defs.resolve_job_def(DAILY_JOB_NAME)

    def materialize(
        self,
        first_day: dt.date,
        last_day: dt.date | None = None,
        *,
        formats: list[str] | None = None,
        account_codes: list[str] | None = None,
        raise_on_error: bool = True,
    ) -> dg.ExecuteInProcessResult:
        """A run of one sale day, or of a range of days as one run (a backfill's run)."""
        config: dict[str, object] = {}
        if formats is not None:
            config["formats"] = formats
        if account_codes is not None:
            config["account_codes"] = account_codes
        run_config = {"ops": {"daily_account_exports": {"config": config}}} if config else None
        if last_day is None or last_day == first_day:
            return self.daily_job().execute_in_process(
                instance=self.instance,
                partition_key=first_day.isoformat(),
                run_config=run_config,
                raise_on_error=raise_on_error,
            )
        return self.daily_job().execute_in_process(
            instance=self.instance,
            tags={RANGE_START_TAG: first_day.isoformat(), RANGE_END_TAG: last_day.isoformat()},
            run_config=run_config,
            raise_on_error=raise_on_error,
        )

    def daily_file(self, code: str, day: dt.date, extension: str) -> Path:
        return ExportStorage(root=str(self.exports)).daily_path(code, day, extension)

    def daily_files(self) -> set[Path]:
        """Every finished daily file and manifest (not lock files)."""
        root = self.exports / "daily"
        return {
            path for path in root.rglob("*") if path.is_file() and LOCKS_FOLDER not in path.parts
        }


def account_codes(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                sa.select(accounts.c.account_code).order_by(accounts.c.account_code)
            ).scalars()
        )


def live_account_days(engine: Engine) -> set[tuple[str, dt.date]]:
    """(account, day) pairs with at least one live record: the daily files there must be."""
    r, a = bookkeeping_records.c, accounts.c
    query = (
        sa.select(a.account_code, r.sale_date)
        .select_from(bookkeeping_records.join(accounts, a.id == r.account_id))
        .where(r.deleted_at.is_(None))
        .distinct()
    )
    with engine.connect() as connection:
        return {(row.account_code, row.sale_date) for row in connection.execute(query)}


def live_count(engine: Engine, code: str, day: dt.date) -> int:
    """Records of one partition that an export contains (soft-deleted ones excluded)."""
    r, a = bookkeeping_records.c, accounts.c
    query = (
        sa.select(sa.func.count())
        .select_from(bookkeeping_records.join(accounts, a.id == r.account_id))
        .where(a.account_code == code, r.sale_date == day, r.deleted_at.is_(None))
    )
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())


def busiest_partitions(engine: Engine, limit: int) -> list[tuple[str, dt.date]]:
    """(account, day) pairs with the most records, so tests export something non-trivial."""
    r, a = bookkeeping_records.c, accounts.c
    query = (
        sa.select(a.account_code, r.sale_date)
        .select_from(bookkeeping_records.join(accounts, a.id == r.account_id))
        .group_by(a.account_code, r.sale_date)
        .order_by(sa.func.count().desc(), a.account_code, r.sale_date)
        .limit(limit)
    )
    with engine.connect() as connection:
        return [(row.account_code, row.sale_date) for row in connection.execute(query)]


@pytest.fixture
def dagster_instance(tmp_path: Path) -> Iterator[dg.DagsterInstance]:
    """A real, persistent (SQLite-backed) instance in a temporary folder."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as instance:
        yield instance


@pytest.fixture
def dagster_setup(
    postgres_url: str, pg_engine: Engine, dagster_instance: dg.DagsterInstance, tmp_path: Path
) -> Setup:
    """A seeded PostgreSQL records database and definitions wired to it, UTC partitions."""
    seed_records(pg_engine, SEED_RECORDS, SEED_ACCOUNTS, seed=7)
    exports = tmp_path / "exports"
    defs = build_definitions(
        {
            "records_database": RecordsDatabase(url=postgres_url),
            "export_storage": ExportStorage(root=str(exports)),
        },
        timezone="UTC",
        first_day=FIRST_DAY,
    )
    return Setup(postgres_url, pg_engine, dagster_instance, exports, defs)
