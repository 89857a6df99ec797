"""Column names, kinds and types: the default set, names in each money mode, Excel titles."""

from __future__ import annotations

import polars as pl
import pytest

from record_exports.columns import (
    ALL_COLUMNS,
    COLUMN_TYPES,
    DEFAULT_COLUMNS,
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
    assert column("ebay_order_id").title == "Ebay Order Id"
    assert column("created_at").dtype == pl.Datetime("us", "UTC")


def test_every_kind_has_its_types() -> None:
    assert set(COLUMN_TYPES) == set(ColumnKind) == set(ALL_COLUMNS.values())


@pytest.mark.parametrize(
    ("names", "remarks", "hint"),
    [
        (["id", "nope"], False, "unknown column(s) 'nope'; valid names: id, account_code"),
        (["qty", "qty"], False, "column(s) named twice: qty"),
        (["service_remark"], False, "service_remark need include_remarks=true"),
    ],
)
def test_bad_names_are_refused_naming_the_field(names: list[str], remarks: bool, hint: str) -> None:
    with pytest.raises(ExportInputError) as caught:
        resolve_columns(names, remarks)
    assert caught.value.field == "columns" and hint in str(caught.value)
