"""Settings read from the environment when asked for, never at import time."""

from __future__ import annotations

import datetime as dt
import os
import re
from pathlib import Path
from zoneinfo import ZoneInfo

REPO_ROOT = Path(__file__).resolve().parents[1]

DATABASE_URL_VARIABLE = "RECORDS_DATABASE_URL"
EXPORTS_DIR_VARIABLE = "EXPORTS_DIR"
TIMEZONE_VARIABLE = "EXPORTS_TIMEZONE"
FIRST_DAY_VARIABLE = "EXPORTS_FIRST_DAY"

# Earlier than any record an online-arbitrage store can hold: Amazon opened its marketplace
# to other sellers in November 2000, and eBay-to-Amazon arbitrage needs both. Ten years of
# days are 3,653 partitions; from 2000 to 2030, 11,000, far below Dagster's 100,000
# guidance. A store that starts later may set its own first day; empty days cost one
# materialization each and write no file.
DEFAULT_FIRST_DAY = dt.date(2000, 1, 1)


class SettingError(ValueError):
    """An environment variable holds a value the product cannot use; the message names it."""


def default_database_url() -> str:
    """The embedded SQLite database, relative to the repo root rather than the cwd."""
    return f"sqlite:///{REPO_ROOT / 'data' / 'records.db'}"


def records_database_url() -> str:
    return os.environ.get(DATABASE_URL_VARIABLE) or default_database_url()


def resolve_repo_path(value: str) -> Path:
    """A relative setting is taken relative to the repo root, so the CLI works from any cwd."""
    path = Path(value)
    return path if path.is_absolute() else REPO_ROOT / path


def exports_dir() -> Path:
    return resolve_repo_path(os.environ.get(EXPORTS_DIR_VARIABLE) or "exports")


def exports_timezone() -> str:
    return os.environ.get(TIMEZONE_VARIABLE) or "UTC"


def exports_first_day(timezone: str | None = None, today: dt.date | None = None) -> dt.date:
    """The first sale day of the daily partitions (`EXPORTS_FIRST_DAY`, `YYYY-MM-DD`).

    A value that is not a real date, or lies after today in `timezone`, is a
    `SettingError` whose one-line message names the variable.
    """
    raw = (os.environ.get(FIRST_DAY_VARIABLE) or "").strip()
    if not raw:
        return DEFAULT_FIRST_DAY
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        raise SettingError(
            f"{FIRST_DAY_VARIABLE}={raw[:40]!r} is not a date; use YYYY-MM-DD, e.g. 2019-01-01"
        )
    try:
        first = dt.date.fromisoformat(raw)
    except ValueError:
        raise SettingError(
            f"{FIRST_DAY_VARIABLE}={raw!r} is not a real date; use YYYY-MM-DD, e.g. 2019-01-01"
        ) from None
    zone = timezone or exports_timezone()
    today = today or dt.datetime.now(ZoneInfo(zone)).date()
    if first > today:
        raise SettingError(
            f"{FIRST_DAY_VARIABLE}={raw} is in the future (today is {today} in {zone}); "
            "set it to the first sale day of your records"
        )
    return first
