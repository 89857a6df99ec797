"""One export start to finish, in every format: what all sinks share, failures, both databases."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import openpyxl
import polars as pl
import pyarrow as pa
import pytest

from record_exports.database import DatabaseTarget
from record_exports.engine import run_export
from record_exports.errors import ExportInputError
from record_exports.params import ExportParams, parse_export_params
from tests.factories import HOSTILE, oracle_copy_csv
from tests.record_exports.exporting import decode_excel, export, small_batches, url_of


def test_hostile_text_round_trips_in_every_format(
    pg_records: DatabaseTarget, tmp_path: Path
) -> None:
    wanted = sorted(text for text in HOSTILE)
    columns = ["id", "item_name"]
    found: dict[str, list[str]] = {}
    csv_path, _ = export(
        pg_records, tmp_path, "h", format="csv", account_codes=["ACC2"], columns=columns
    )
    found["csv"] = pl.read_csv(csv_path, infer_schema=False)["item_name"].fill_null("").to_list()
    nd_path, _ = export(
        pg_records, tmp_path, "h", format="ndjson", account_codes=["ACC2"], columns=columns
    )
    found["ndjson"] = [
        json.loads(line)["item_name"] for line in nd_path.read_text("utf-8").splitlines()
    ]
    js_path, _ = export(
        pg_records, tmp_path, "h", format="json", account_codes=["ACC2"], columns=columns
    )
    found["json"] = [row["item_name"] for row in json.loads(js_path.read_bytes())["records"]]
    pq_path, _ = export(
        pg_records, tmp_path, "h", format="parquet", account_codes=["ACC2"], columns=columns
    )
    found["parquet"] = pl.read_parquet(pq_path)["item_name"].to_list()
    xl_path, meta = export(
        pg_records, tmp_path, "h", format="xlsx", account_codes=["ACC2"], columns=columns
    )
    sheet = openpyxl.load_workbook(xl_path)["Records"]
    cells = [row[1] for row in sheet.iter_rows(min_row=2)]
    assert all(cell.data_type == "s" for cell in cells if cell.value is not None)
    found["xlsx"] = [decode_excel(cell.value or "") for cell in cells]
    long_text = "y" * 40_000
    for name, values in found.items():
        present = [value for value in values if value in wanted or value == long_text[:32_767]]
        expected = (
            wanted
            if name != "xlsx"
            else sorted(text if len(text) <= 32_767 else text[:32_767] for text in wanted)
        )
        assert sorted(present) == expected, name
    assert meta["truncated_cells"] == sum(len(text) > 32_767 for text in found["parquet"]) >= 1


def test_empty_selection_writes_headers(pg_records: DatabaseTarget, tmp_path: Path) -> None:
    url = url_of(pg_records)
    path, meta = export(
        pg_records, tmp_path, "none", sale_date_from="2001-01-01", sale_date_to="2001-01-02"
    )
    assert meta["row_count"] == 0
    assert path.read_bytes() == oracle_copy_csv(url, where="FALSE")
    json_path, _ = export(pg_records, tmp_path, "none", format="json", sale_date_to="2001-01-02")
    assert json.loads(json_path.read_bytes()) == {"records": []}
    xlsx_path, _ = export(pg_records, tmp_path, "none", format="xlsx", sale_date_to="2001-01-02")
    assert openpyxl.load_workbook(xlsx_path)["Records"].max_row == 1


class InjectedFailure(RuntimeError):
    pass


@pytest.mark.parametrize("export_format", ["csv", "ndjson", "json", "xlsx", "parquet"])
def test_failure_mid_write_leaves_no_file(
    pg_records: DatabaseTarget, tmp_path: Path, export_format: str
) -> None:
    def failing(
        target: DatabaseTarget, params: ExportParams, account_ids: Sequence[str]
    ) -> Iterator[pa.RecordBatch]:
        for number, batch in enumerate(small_batches(50)(target, params, account_ids)):
            if number == 3:
                raise InjectedFailure("database went away")
            yield batch

    out = tmp_path / "out"
    params = parse_export_params({"format": export_format})
    with pytest.raises(InjectedFailure):
        run_export(pg_records, params, out / f"x.{export_format}", batches=failing)
    assert list(out.iterdir()) == []


def test_unknown_account_is_rejected_before_reading(
    pg_records: DatabaseTarget, tmp_path: Path
) -> None:
    with pytest.raises(ExportInputError) as caught:
        export(pg_records, tmp_path, "x", account_codes=["ACC1", "NOPE"])
    assert caught.value.field == "account_codes" and "NOPE" in str(caught.value)
    assert list(tmp_path.iterdir()) == []
