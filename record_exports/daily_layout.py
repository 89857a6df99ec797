"""Where daily files live: `<daily root>/<account>/<YYYY>/<MM>/<account>_<YYYY-MM-DD>.<ext>`,
each next to its `.manifest.json`, and how to find the ones of given days."""

from __future__ import annotations

import datetime as dt
import os
from collections import defaultdict
from pathlib import Path

from record_exports.manifest import MANIFEST_SUFFIX
from record_exports.params import ACCOUNT_CODE_PATTERN, ExportFormat

DAILY_FOLDER = "daily"
LOCKS_FOLDER = ".locks"
EXTENSIONS = tuple(export_format.extension for export_format in ExportFormat)


def names_a_folder(account_code: str) -> bool:
    """Whether an account code can be a folder of its own below the daily root: letters,
    digits, `_`, `.`, `-` (the codes exports accept), but not `.` or `..`."""
    return bool(ACCOUNT_CODE_PATTERN.fullmatch(account_code)) and account_code.strip(".") != ""


def daily_path(root: Path, account_code: str, day: dt.date, extension: str) -> Path:
    return root / account_code / f"{day:%Y}" / f"{day:%m}" / f"{account_code}_{day}.{extension}"


def lock_folder(root: Path) -> Path:
    return root / LOCKS_FOLDER


def months(first: dt.date, last: dt.date) -> list[dt.date]:
    """The first day of every month from `first`'s to `last`'s."""
    found = []
    month = first.replace(day=1)
    while month <= last:
        found.append(month)
        month = (month + dt.timedelta(days=32)).replace(day=1)
    return found


def _day_of(name: str, account_code: str) -> dt.date | None:
    """The day a daily file or manifest of `account_code` is for (None: not one)."""
    prefix = f"{account_code}_"
    if not name.startswith(prefix):
        return None
    stem, _, suffix = name[len(prefix) :].partition(".")
    if suffix.removesuffix(MANIFEST_SUFFIX) not in EXTENSIONS:
        return None
    try:
        return dt.date.fromisoformat(stem) if len(stem) == 10 else None
    except ValueError:
        return None


def existing_files(
    root: Path, account_code: str, first: dt.date, last: dt.date
) -> dict[dt.date, list[Path]]:
    """The account's daily files and manifests of days `first`..`last`, by day (temporary
    files of exports in progress are not among them)."""
    found: dict[dt.date, list[Path]] = defaultdict(list)
    for month in months(first, last):
        folder = root / account_code / f"{month:%Y}" / f"{month:%m}"
        try:
            entries = list(os.scandir(folder))
        except (FileNotFoundError, NotADirectoryError):
            continue  # no folder, no files (what is in its way fails that account's writes)
        for entry in entries:
            day = _day_of(entry.name, account_code)
            if day is not None and first <= day <= last:
                found[day].append(Path(entry.path))
    return dict(found)
