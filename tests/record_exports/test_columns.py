"""Column names, kinds and types: the default set, names in each money mode, Excel titles."""

from __future__ import annotations

import polars as pl
import pytest

from record_exports.columns import (
    ALL_COLUMNS,
    COLUMN_TYPES,
    DEFAULT_COLUMNS,
    EXCEL_HEADERS,
    REMARK_COLUMNS,
    ColumnKind,
    MoneyMode,
    column,
    resolve_columns,
)
from record_exports.errors import ExportInputError


def test_default_columns_then_remarks() -> None:
    assert [c.name for c in resolve_columns([], False)] == list(DEFAULT_COLUMNS)
    assert [c.name for c in resolve_columns([], True)] == [*DEFAULT_COLUMNS, *REMARK_COLUMNS]
    assert [c.name for c in resolve_columns(["qty", "id"], False)] == ["qty", "id"]


def test_names_titles_and_dtypes() -> None:
    price = column("sale_price_cents")
    assert (price.output_name(MoneyMode.CENTS), price.output_name(MoneyMode.DOLLARS)) == (
        "sale_price_cents",
        "sale_price",
    )
    assert price.title == "Sale Price" and price.dtype == pl.Int64
    assert column("qty").output_name(MoneyMode.DOLLARS) == "qty"
    assert column("ebay_order_id").title == "eBay Order ID"
    assert column("created_at").dtype == pl.Datetime("us", "UTC")


def test_excel_headers_are_spelled_as_accountants_write_them() -> None:
    """One header per column, no header twice, none mentioning cents (Excel holds dollars)."""
    assert list(EXCEL_HEADERS) == list(ALL_COLUMNS)
    assert len(set(EXCEL_HEADERS.values())) == len(EXCEL_HEADERS)
    assert not [header for header in EXCEL_HEADERS.values() if "cent" in header.lower()]
    assert {name: EXCEL_HEADERS[name] for name in ("id", "ebay_order_id", "amazon_order_id")} == {
        "id": "ID",
        "ebay_order_id": "eBay Order ID",
        "amazon_order_id": "Amazon Order ID",
    }
    assert EXCEL_HEADERS["cogs_total_cents"] == "COGS Total"
    assert EXCEL_HEADERS["ebay_fees_cents"] == "eBay Fees"
    assert EXCEL_HEADERS["updated_at"] == "Updated At (UTC)"
    assert [column(name).title for name in ALL_COLUMNS] == list(EXCEL_HEADERS.values())


def test_every_kind_has_its_types() -> None:
    assert set(COLUMN_TYPES) == set(ColumnKind) == set(ALL_COLUMNS.values())


@pytest.mark.parametrize(
    ("names", "remarks", "hint"),
    [
        (["id", "nope"], False, "unknown column(s) 'nope' (valid names: id, account_code"),
        (["qty", "qty"], False, "column(s) named twice: qty"),
        (["service_remark"], False, "service_remark need include_remarks=true"),
    ],
)
def test_bad_names_are_refused_naming_the_field(names: list[str], remarks: bool, hint: str) -> None:
    with pytest.raises(ExportInputError) as caught:
        resolve_columns(names, remarks)
    assert caught.value.field == "columns" and hint in str(caught.value)
