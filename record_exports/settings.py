"""The environment variables that configure record-exports, and their defaults: the one place
either is written down.

Values are read when asked for (`Setting.value()`), never at import time. This module uses the
standard library only, so the Makefile can run it before the virtualenv exists.

Adding a variable is one edit: a `Setting` in `SETTINGS` below, with its name, default and
meaning. Everything that fills in defaults iterates over `SETTINGS`, so it picks the new one up:
the CLI (`fill_defaults()` before it starts a Dagster run) and the Makefile (which exports the
output of `python -m record_exports.settings --make` to every recipe, `make dev` included). Read
it with `SETTING.value()` where it is used; code that runs inside Dagster takes a secret through
`dagster.EnvVar(SETTING.variable)` instead. A default must not contain whitespace (the Makefile
splits on it); relative paths in values are taken relative to the repo root (`resolve_repo_path`).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sys
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Setting:
    """One environment variable: its name, the value used when it is unset or empty, and what it
    means (shown by `python -m record_exports.settings`)."""

    variable: str
    default: str
    meaning: str

    def value(self) -> str:
        return os.environ.get(self.variable) or self.default


class SettingError(ValueError):
    """An environment variable holds a value the product cannot use; the message names it."""


RECORDS_DATABASE_URL = Setting(
    "RECORDS_DATABASE_URL",
    f"sqlite:///{REPO_ROOT / 'data' / 'records.db'}",
    "SQLAlchemy URL of the records database (default: the embedded SQLite file)",
)
EXPORTS_DIR = Setting("EXPORTS_DIR", str(REPO_ROOT / "exports"), "root folder of export files")
EXPORTS_TIMEZONE = Setting(
    "EXPORTS_TIMEZONE", "UTC", 'time zone of the nightly schedule and of "yesterday"'
)
DAGSTER_HOME = Setting("DAGSTER_HOME", str(REPO_ROOT / ".dagster_home"), "Dagster instance folder")
# Earlier than any record an online-arbitrage store can hold: Amazon opened its marketplace
# to other sellers in November 2000, and eBay-to-Amazon arbitrage needs both. Ten years of
# days are 3,653 partitions; from 2000 to 2030, 11,000, far below Dagster's 100,000
# guidance. A store that starts later may set its own first day; empty days cost one
# materialization each and write no file.
EXPORTS_FIRST_DAY = Setting(
    "EXPORTS_FIRST_DAY",
    "2000-01-01",
    "first sale day (YYYY-MM-DD) of the daily partitions, read when the definitions load",
)
EXPORTS_EXECUTOR = Setting(
    "EXPORTS_EXECUTOR",
    "default",
    "what runs the steps of every job: `default` (on the machine of the run) or `celery`",
)
CELERY_BROKER_URL = Setting(
    "CELERY_BROKER_URL",
    "amqp://guest:guest@127.0.0.1:5672//",
    "Celery broker (RabbitMQ) when EXPORTS_EXECUTOR=celery",
)
CELERY_RESULT_BACKEND = Setting(
    "CELERY_RESULT_BACKEND", "rpc://", "Celery result backend when EXPORTS_EXECUTOR=celery"
)

SETTINGS: tuple[Setting, ...] = (
    RECORDS_DATABASE_URL,
    EXPORTS_DIR,
    EXPORTS_TIMEZONE,
    EXPORTS_FIRST_DAY,
    DAGSTER_HOME,
    EXPORTS_EXECUTOR,
    CELERY_BROKER_URL,
    CELERY_RESULT_BACKEND,
)


def resolve_repo_path(value: str) -> Path:
    """A relative setting is taken relative to the repo root, so the CLI works from any cwd."""
    path = Path(value)
    return path if path.is_absolute() else REPO_ROOT / path


def fill_defaults(environ: MutableMapping[str, str] | None = None) -> None:
    """Set every unset (or empty) variable to its default, for this process and the processes
    and Dagster runs it starts (resources read their settings through `EnvVar`)."""
    environ = os.environ if environ is None else environ
    for setting in SETTINGS:
        if not environ.get(setting.variable):
            environ[setting.variable] = setting.default


def exports_first_day(timezone: str | None = None, today: dt.date | None = None) -> dt.date:
    """The first sale day of the daily partitions (`EXPORTS_FIRST_DAY`, `YYYY-MM-DD`).

    A value that is not a real date, or lies after today in `timezone`, is a
    `SettingError` whose one-line message names the variable.
    """
    name = EXPORTS_FIRST_DAY.variable
    raw = EXPORTS_FIRST_DAY.value().strip() or EXPORTS_FIRST_DAY.default
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        raise SettingError(f"{name}={raw[:40]!r} is not a date; use YYYY-MM-DD, e.g. 2019-01-01")
    try:
        first = dt.date.fromisoformat(raw)
    except ValueError:
        raise SettingError(
            f"{name}={raw!r} is not a real date; use YYYY-MM-DD, e.g. 2019-01-01"
        ) from None
    zone = timezone or EXPORTS_TIMEZONE.value()
    today = today or dt.datetime.now(ZoneInfo(zone)).date()
    if first > today:
        raise SettingError(
            f"{name}={raw} is in the future (today is {today} in {zone}); "
            "set it to the first sale day of your records"
        )
    return first


def make_assignments(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """`NAME=default` for every setting the environment leaves unset, for the Makefile."""
    environ = os.environ if environ is None else environ
    return [f"{s.variable}={s.default}" for s in SETTINGS if not environ.get(s.variable)]


def main(argv: Sequence[str]) -> int:
    """`--make`: the Makefile's assignments; no argument: every setting, its value and meaning."""
    if list(argv) == ["--make"]:
        print("\n".join(make_assignments()))
        return 0
    if argv:
        print("usage: python -m record_exports.settings [--make]", file=sys.stderr)
        return 2
    for setting in SETTINGS:
        print(f"{setting.variable}={setting.value()}  # {setting.meaning}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
