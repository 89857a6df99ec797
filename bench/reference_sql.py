"""The reference query: the engine's selection with the computed fields done in SQL.

Used by `psql COPY ... (FORMAT csv, HEADER)` and `row_to_json`; its CSV must equal ours
byte for byte.
"""

EARN = "(r.sale_price_cents - coalesce(r.ebay_fees_cents, 0))"
COGS = (
    "(coalesce(r.amazon_price_cents, 0) + coalesce(r.amazon_tax_cents, 0)"
    " + coalesce(r.amazon_shipping_cents, 0))"
)
LABEL = "coalesce(r.return_label_cost_cents, 0)"
SQL = f"""SELECT r.id, r.ebay_order_id, r.sale_date, r.item_name, r.qty, r.sale_price_cents,
 r.ebay_fees_cents, {EARN} AS earnings_net_cents, r.amazon_price_cents, r.amazon_tax_cents,
 r.amazon_shipping_cents, {COGS} AS cogs_total_cents, r.amazon_order_id, r.status,
 r.return_label_cost_cents,
 CASE WHEN r.status = 'RETURN_CLOSED' THEN -{LABEL}
      WHEN r.status = 'SUCCESSFUL' THEN {EARN} - {COGS}
      ELSE {EARN} - {COGS} - {LABEL} END AS profit_cents
FROM bookkeeping_records AS r WHERE r.deleted_at IS NULL
ORDER BY r.updated_at DESC, r.id DESC"""
