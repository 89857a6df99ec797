"""Where export files go: one root (`EXPORTS_DIR`) with a folder per kind of export."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import dagster as dg
from pydantic import Field

from record_exports.daily_layout import DAILY_FOLDER, daily_path
from record_exports.settings import resolve_repo_path
from record_exports.sinks.base import EXCEL_MAX_ROWS_PER_SHEET


class ExportStorage(dg.ConfigurableResource):
    """Where export files go: on-demand, request and daily folders under the exports root
    (EXPORTS_DIR)."""

    root: str = Field(
        description="For operators: the exports root, from EXPORTS_DIR; a relative path is "
        "taken from the repo root."
    )
    on_demand_folder: str = Field(
        default="on-demand",
        description="For operators: the folder under root for runs launched from the UI or "
        "the CLI (the CLI's --output sets root to its folder and this to empty).",
    )
    xlsx_rows_per_sheet: int = Field(
        default=EXCEL_MAX_ROWS_PER_SHEET,
        description="For operators and tests: data rows per Excel sheet before the export "
        f"continues on the next; at most {EXCEL_MAX_ROWS_PER_SHEET:,}, Excel's limit.",
    )

    def root_path(self) -> Path:
        return resolve_repo_path(self.root)

    def on_demand_path(self, file_name: str) -> Path:
        return self.root_path() / self.on_demand_folder / file_name

    def request_path(self, request_id: int, file_name: str) -> Path:
        return self.root_path() / "requests" / str(request_id) / file_name

    def daily_root(self) -> Path:
        """The root of daily files, `<root>/daily/<account>/<YYYY>/<MM>/...` (`daily_layout`)."""
        return self.root_path() / DAILY_FOLDER

    def daily_path(self, account_code: str, day: dt.date, extension: str) -> Path:
        return daily_path(self.daily_root(), account_code, day, extension)
