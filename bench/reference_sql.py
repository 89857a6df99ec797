"""The reference export, computed by PostgreSQL alone: the engine's default-column selection
with the money fields done in SQL. The one SQL oracle of the project.

The tests compare our files with it byte for byte (tests/factories.py runs it through COPY,
`row_to_json` and a plain SELECT); the bench times `psql` running it. Everything here is
constant SQL: `where` is SQL a test writes, never user input.
"""

from __future__ import annotations

EARNINGS = "(r.sale_price_cents - coalesce(r.ebay_fees_cents, 0))"
COGS = (
    "(coalesce(r.amazon_price_cents, 0) + coalesce(r.amazon_tax_cents, 0)"
    " + coalesce(r.amazon_shipping_cents, 0))"
)
LABEL = "coalesce(r.return_label_cost_cents, 0)"
PROFIT = (
    f"CASE WHEN r.status = 'RETURN_CLOSED' THEN -{LABEL}"
    f" WHEN r.status = 'SUCCESSFUL' THEN {EARNINGS} - {COGS}"
    f" ELSE {EARNINGS} - {COGS} - {LABEL} END"
)

# The spec's default columns, in its order (domain.md), each as PostgreSQL computes it, and
# whether it is money. Written out here rather than taken from the engine, so that the
# oracle stays independent of the code it checks.
DEFAULT_SELECT: tuple[tuple[str, str, bool], ...] = (
    ("id", "r.id::text", False),
    ("ebay_order_id", "r.ebay_order_id", False),
    ("sale_date", "r.sale_date", False),
    ("item_name", "r.item_name", False),
    ("qty", "r.qty", False),
    ("sale_price_cents", "r.sale_price_cents", True),
    ("ebay_fees_cents", "r.ebay_fees_cents", True),
    ("earnings_net_cents", EARNINGS, True),
    ("amazon_price_cents", "r.amazon_price_cents", True),
    ("amazon_tax_cents", "r.amazon_tax_cents", True),
    ("amazon_shipping_cents", "r.amazon_shipping_cents", True),
    ("cogs_total_cents", COGS, True),
    ("amazon_order_id", "r.amazon_order_id", False),
    ("status", "r.status", False),
    ("return_label_cost_cents", "r.return_label_cost_cents", True),
    ("profit_cents", PROFIT, True),
)


def reference_select(money: str = "cents", where: str = "TRUE") -> str:
    """The default-column export as one SELECT, in export order; `money="dollars"` gives
    exact two-decimal numerics named without `_cents`."""
    parts = []
    for name, expression, is_money in DEFAULT_SELECT:
        if is_money and money == "dollars":
            parts.append(
                f"({expression}::numeric / 100)::numeric(18, 2) AS {name.removesuffix('_cents')}"
            )
        else:
            parts.append(f"{expression} AS {name}")
    return (
        f"SELECT {', '.join(parts)} FROM bookkeeping_records AS r "
        f"WHERE r.deleted_at IS NULL AND {where} ORDER BY r.updated_at DESC, r.id DESC"
    )


SQL = reference_select()
