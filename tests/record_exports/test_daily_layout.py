"""Where daily files live, and finding those of some days among other files."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from record_exports.daily_layout import daily_path, existing_files, months, names_a_folder


def test_paths_and_months() -> None:
    root = Path("/exports/daily")
    assert daily_path(root, "ACC7", dt.date(2024, 2, 29), "xlsx") == Path(
        "/exports/daily/ACC7/2024/02/ACC7_2024-02-29.xlsx"
    )
    assert months(dt.date(2024, 11, 30), dt.date(2025, 2, 1)) == [
        dt.date(2024, 11, 1),
        dt.date(2024, 12, 1),
        dt.date(2025, 1, 1),
        dt.date(2025, 2, 1),
    ]


def test_existing_files_of_an_account_and_days(tmp_path: Path) -> None:
    wanted = [
        daily_path(tmp_path, "ACC1", dt.date(2024, 1, 31), "csv"),
        daily_path(tmp_path, "ACC1", dt.date(2024, 2, 1), "xlsx.manifest.json"),
        daily_path(tmp_path, "ACC1", dt.date(2024, 2, 1), "parquet"),
    ]
    others = [
        daily_path(tmp_path, "ACC1", dt.date(2024, 1, 30), "csv"),  # before the range
        daily_path(tmp_path, "ACC10", dt.date(2024, 2, 1), "csv"),  # another account
        tmp_path / "ACC1" / "2024" / "02" / ".ACC1_2024-02-01.csv.partial-0a1b2c",  # in progress
        tmp_path / "ACC1" / "2024" / "02" / "ACC1_2024-02-01.txt",  # not a daily format
        tmp_path / "ACC1" / "2024" / "02" / "notes.csv",
    ]
    for path in wanted + others:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    found = existing_files(tmp_path, "ACC1", dt.date(2024, 1, 31), dt.date(2024, 3, 31))
    assert {day: sorted(paths) for day, paths in found.items()} == {
        dt.date(2024, 1, 31): [wanted[0]],
        dt.date(2024, 2, 1): sorted(wanted[1:]),
    }
    assert existing_files(tmp_path, "ACC2", dt.date(2024, 1, 1), dt.date(2024, 12, 31)) == {}


def test_only_codes_that_stay_in_their_own_folder() -> None:
    assert names_a_folder("ACC7") and names_a_folder("store.eu-2") and names_a_folder("a..b")
    for code in (".", "..", "...", "a/b", "../x", "", "x" * 65, "semi;colon"):
        assert not names_a_folder(code), code
