"""Settings read from the environment: `EXPORTS_FIRST_DAY` and its checks."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from record_exports.settings import DEFAULT_FIRST_DAY, SettingError, exports_first_day

TODAY = dt.date(2026, 11, 30)


def test_unset_or_empty_means_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EXPORTS_FIRST_DAY", raising=False)
    assert exports_first_day("UTC", TODAY) == DEFAULT_FIRST_DAY == dt.date(2000, 1, 1)
    monkeypatch.setenv("EXPORTS_FIRST_DAY", " ")
    assert exports_first_day("UTC", TODAY) == DEFAULT_FIRST_DAY


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
