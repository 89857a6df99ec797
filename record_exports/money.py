"""Money as Polars expressions over integer cents: the computed fields and exact dollar text."""

from __future__ import annotations

import polars as pl


def _cents(name: str) -> pl.Expr:
    return pl.col(name).fill_null(0)


def earnings_net_cents() -> pl.Expr:
    return _cents("sale_price_cents") - _cents("ebay_fees_cents")


def cogs_total_cents() -> pl.Expr:
    return (
        _cents("amazon_price_cents") + _cents("amazon_tax_cents") + _cents("amazon_shipping_cents")
    )


def profit_cents() -> pl.Expr:
    """RETURN_CLOSED loses only the label; SUCCESSFUL never pays it; other returns pay both."""
    label = _cents("return_label_cost_cents")
    trade = earnings_net_cents() - cogs_total_cents()
    status = pl.col("status")
    return (
        pl.when(status == "RETURN_CLOSED")
        .then(-label)
        .when(status == "SUCCESSFUL")
        .then(trade)
        .otherwise(trade - label)
    )


COMPUTED_EXPRESSIONS = {
    "earnings_net_cents": earnings_net_cents,
    "cogs_total_cents": cogs_total_cents,
    "profit_cents": profit_cents,
}


def dollars_text(cents: pl.Expr) -> pl.Expr:
    """Exact two-decimal text from integer cents (`-5` -> `-0.05`), no float on the way."""
    magnitude = cents.abs()
    return pl.concat_str(
        pl.when(cents < 0).then(pl.lit("-")).otherwise(pl.lit("")),
        (magnitude // 100).cast(pl.String),
        pl.lit("."),
        (magnitude % 100).cast(pl.String).str.zfill(2),
    )


def dollars_decimal(cents: pl.Expr) -> pl.Expr:
    """Decimal(18, 2) dollars from integer cents, exactly."""
    return (cents.cast(pl.Decimal(18, 0)).cast(pl.Decimal(18, 2)) / 100).cast(pl.Decimal(18, 2))
