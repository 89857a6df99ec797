"""Settings: one list of variables and defaults, read when asked, filled in by the CLI and the
Makefile from that list; `EXPORTS_FIRST_DAY` and its checks."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from zoneinfo import ZoneInfo

import pytest

from record_exports import settings
from record_exports.settings import (
    DAGSTER_HOME,
    EXPORTS_DIR,
    EXPORTS_FIRST_DAY,
    EXPORTS_TIMEZONE,
    RECORDS_DATABASE_URL,
    REPO_ROOT,
    SETTINGS,
    SettingError,
    exports_first_day,
    fill_defaults,
    make_assignments,
    resolve_repo_path,
)


def test_defaults_are_those_of_the_contract() -> None:
    assert {setting.variable: setting.default for setting in SETTINGS} == {
        "RECORDS_DATABASE_URL": f"sqlite:///{REPO_ROOT}/data/records.db",
        "EXPORTS_DIR": f"{REPO_ROOT}/exports",
        "EXPORTS_TIMEZONE": "UTC",
        "EXPORTS_FIRST_DAY": "2000-01-01",
        "DAGSTER_HOME": f"{REPO_ROOT}/.dagster_home",
        "EXPORTS_EXECUTOR": "default",
        "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
        "CELERY_RESULT_BACKEND": "rpc://",
    }


def test_value_is_read_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPORTS_TIMEZONE", "Europe/Berlin")
    assert EXPORTS_TIMEZONE.value() == "Europe/Berlin"
    monkeypatch.setenv("EXPORTS_TIMEZONE", "")
    assert EXPORTS_TIMEZONE.value() == "UTC"
    monkeypatch.delenv("EXPORTS_TIMEZONE")
    assert EXPORTS_TIMEZONE.value() == "UTC"


def test_fill_defaults_keeps_what_is_set() -> None:
    environ = {"EXPORTS_DIR": "/srv/exports", "DAGSTER_HOME": ""}
    fill_defaults(environ)
    assert environ == {
        "EXPORTS_DIR": "/srv/exports",
        "DAGSTER_HOME": DAGSTER_HOME.default,
        "RECORDS_DATABASE_URL": RECORDS_DATABASE_URL.default,
        "EXPORTS_TIMEZONE": "UTC",
        "EXPORTS_FIRST_DAY": "2000-01-01",
        "EXPORTS_EXECUTOR": "default",
        "CELERY_BROKER_URL": "amqp://guest:guest@127.0.0.1:5672//",
        "CELERY_RESULT_BACKEND": "rpc://",
    }
    assert make_assignments(environ) == []
    assert make_assignments({"EXPORTS_DIR": "/srv"}) == [
        f"{s.variable}={s.default}" for s in SETTINGS if s is not EXPORTS_DIR
    ]


def test_defaults_hold_no_whitespace() -> None:
    """The Makefile splits the assignments on whitespace."""
    assert not [s.variable for s in SETTINGS if any(char.isspace() for char in s.default)]


def test_relative_paths_are_under_the_repo() -> None:
    assert resolve_repo_path("exports") == REPO_ROOT / "exports"
    assert resolve_repo_path("/tmp/x") == settings.Path("/tmp/x")


def test_the_makefile_exports_the_defaults() -> None:
    """`make` reads the defaults from this module; a variable set in the environment wins."""
    environ = {k: v for k, v in os.environ.items() if k not in {s.variable for s in SETTINGS}}
    environ["EXPORTS_DIR"] = "/srv/exports"
    database = make_database(environ)
    assert database == {
        **{s.variable: s.default for s in SETTINGS},
        "EXPORTS_DIR": "/srv/exports",
    }


def make_database(environ: dict[str, str]) -> dict[str, str]:
    """The variables as `make` sees them: its database of variables, printed without running."""
    done = subprocess.run(
        ["make", "--no-print-directory", "-p", "-n", "-f", "Makefile", "install"],
        cwd=REPO_ROOT,
        env={**environ, "PYTHON": sys.executable},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    wanted = {setting.variable for setting in SETTINGS}
    found = {}
    for line in done.stdout.splitlines():
        name, _, value = line.partition(" = ")
        if name in wanted:
            found[name] = value
    return found


def test_settings_command_lists_every_variable() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "record_exports.settings"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert [line.split("=")[0] for line in done.stdout.splitlines()] == [
        s.variable for s in SETTINGS
    ]


TODAY = dt.date(2026, 11, 30)


def test_unset_or_empty_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXPORTS_FIRST_DAY", raising=False)
    assert exports_first_day("UTC", TODAY) == dt.date(2000, 1, 1)
    assert EXPORTS_FIRST_DAY.default == "2000-01-01"
    for blank in ("", " "):
        monkeypatch.setenv("EXPORTS_FIRST_DAY", blank)
        assert exports_first_day("UTC", TODAY) == dt.date(2000, 1, 1)


def test_a_date_up_to_today(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPORTS_FIRST_DAY", "2019-03-05")
    assert exports_first_day("UTC", TODAY) == dt.date(2019, 3, 5)
    monkeypatch.setenv("EXPORTS_FIRST_DAY", TODAY.isoformat())
    assert exports_first_day("UTC", TODAY) == TODAY


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("2019-02-30", "EXPORTS_FIRST_DAY='2019-02-30' is not a real date; use YYYY-MM-DD"),
        ("05/03/2019", "EXPORTS_FIRST_DAY='05/03/2019' is not a date; use YYYY-MM-DD"),
        ("2019-3-5", "EXPORTS_FIRST_DAY='2019-3-5' is not a date; use YYYY-MM-DD"),
        ("2026-12-01", "EXPORTS_FIRST_DAY=2026-12-01 is in the future (today is 2026-11-30 in"),
    ],
)
def test_bad_values_are_one_line_errors_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.setenv("EXPORTS_FIRST_DAY", value)
    with pytest.raises(SettingError) as raised:
        exports_first_day("UTC", TODAY)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_today_is_the_clock_s_date_in_the_exports_time_zone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for zone in ("Pacific/Kiritimati", "Pacific/Pago_Pago"):  # UTC+14 and UTC-11
        today = dt.datetime.now(ZoneInfo(zone)).date()
        monkeypatch.setenv("EXPORTS_FIRST_DAY", today.isoformat())
        assert exports_first_day(zone) == today
        monkeypatch.setenv("EXPORTS_FIRST_DAY", (today + dt.timedelta(days=1)).isoformat())
        with pytest.raises(SettingError, match=f"in {zone}"):
            exports_first_day(zone)
