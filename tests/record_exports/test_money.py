"""Money over integer cents: computed fields by the spec's rules, exact dollars, no float."""

from __future__ import annotations

import decimal

import polars as pl
import pytest

from record_exports.money import (
    cogs_total_cents,
    dollars_decimal,
    dollars_text,
    earnings_net_cents,
    profit_cents,
)
from record_exports.schema import MONEY_COLUMNS

RECORDS = pl.DataFrame(
    {
        "status": [
            "SUCCESSFUL",
            "RETURN_CLOSED",
            "RETURN_LABEL_PROVIDED",
            "REFUND_NO_RETURN",
            "SUCCESSFUL",
        ],
        "sale_price_cents": [10_000, 10_000, 10_000, 10_000, 5],
        "ebay_fees_cents": [1_300, 1_300, None, 1_300, None],
        "amazon_price_cents": [6_000, 6_000, 6_000, None, None],
        "amazon_tax_cents": [480, None, 480, 480, None],
        "amazon_shipping_cents": [299, 299, 299, 299, None],
        "return_label_cost_cents": [750, 750, 750, None, 750],
    },
    schema_overrides={name: pl.Int64 for name in MONEY_COLUMNS},
)


def test_computed_fields_count_nulls_as_zero() -> None:
    computed = RECORDS.select(
        earnings_net_cents().alias("earnings"),
        cogs_total_cents().alias("cogs"),
        profit_cents().alias("profit"),
    )
    assert computed["earnings"].to_list() == [8_700, 8_700, 10_000, 8_700, 5]
    assert computed["cogs"].to_list() == [6_779, 6_299, 6_779, 779, 0]
    # SUCCESSFUL never pays the label; RETURN_CLOSED loses only the label; others pay both.
    assert computed["profit"].to_list() == [1_921, -750, 10_000 - 6_779 - 750, 8_700 - 779, 5]


@pytest.mark.parametrize(
    ("cents", "text"),
    [
        (1234, "12.34"),
        (-5, "-0.05"),
        (0, "0.00"),
        (100, "1.00"),
        (-100_000, "-1000.00"),
        (9_223_372_036_854_775_807, "92233720368547758.07"),
        (None, None),
    ],
)
def test_dollars_text_is_exact(cents: int | None, text: str | None) -> None:
    frame = pl.DataFrame({"c": [cents]}, schema={"c": pl.Int64})
    assert frame.select(dollars_text(pl.col("c"))).item() == text


def test_dollars_decimal_is_exact() -> None:
    frame = pl.DataFrame({"c": [1234, -5, 0, 123_456_789_012]}, schema={"c": pl.Int64})
    values = frame.select(dollars_decimal(pl.col("c"))).to_series()
    assert values.dtype == pl.Decimal(18, 2)
    assert values.to_list() == [
        decimal.Decimal("12.34"),
        decimal.Decimal("-0.05"),
        decimal.Decimal("0.00"),
        decimal.Decimal("1234567890.12"),
    ]
