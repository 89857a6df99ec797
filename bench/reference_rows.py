"""Row-at-a-time reference exporters: what a straightforward Python exporter does.

A psycopg server-side cursor streams the rows (the same ordered SELECT the engine reads),
Python computes the money fields per row and writes each row: `csv.DictWriter` for CSV,
`json.dumps` per line for NDJSON, xlsxwriter `write()` cell by cell (constant_memory, the
spec's formatting) for Excel. Run as `python -m bench.reference_rows FORMAT DSN OUT [LIMIT]`;
prints one JSON line with the row count and the seconds spent.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import sys
import time
from typing import Any

import psycopg
import xlsxwriter

from bench.peak import peak_rss_mb
from record_exports.columns import DEFAULT_COLUMNS, column

SOURCE_SQL = """
SELECT id::text, ebay_order_id, sale_date, item_name, qty, sale_price_cents, ebay_fees_cents,
       amazon_price_cents, amazon_tax_cents, amazon_shipping_cents, amazon_order_id, status,
       return_label_cost_cents
FROM bookkeeping_records WHERE deleted_at IS NULL
ORDER BY updated_at DESC, id DESC
"""
MONEY = {name for name in DEFAULT_COLUMNS if name.endswith("_cents")}


def computed(row: dict[str, Any]) -> dict[str, Any]:
    """The row with its computed fields, in the default column order."""
    earnings = row["sale_price_cents"] - (row["ebay_fees_cents"] or 0)
    cogs = (
        (row["amazon_price_cents"] or 0)
        + (row["amazon_tax_cents"] or 0)
        + (row["amazon_shipping_cents"] or 0)
    )
    label = row["return_label_cost_cents"] or 0
    if row["status"] == "RETURN_CLOSED":
        profit = -label
    elif row["status"] == "SUCCESSFUL":
        profit = earnings - cogs
    else:
        profit = earnings - cogs - label
    row["earnings_net_cents"] = earnings
    row["cogs_total_cents"] = cogs
    row["profit_cents"] = profit
    return {name: row[name] for name in DEFAULT_COLUMNS}


def rows(dsn: str, limit: int | None) -> Any:
    with psycopg.connect(dsn) as connection, connection.cursor(name="export") as cursor:
        cursor.itersize = 10_000
        sql = SOURCE_SQL + (f" LIMIT {int(limit)}" if limit else "")
        cursor.execute(sql)
        names = [description.name for description in cursor.description or []]
        for values in cursor:
            yield computed(dict(zip(names, values, strict=True)))


def write_csv(dsn: str, out: str, limit: int | None) -> int:
    count = 0
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(DEFAULT_COLUMNS), lineterminator="\n")
        writer.writeheader()
        for row in rows(dsn, limit):
            row["sale_date"] = row["sale_date"].isoformat()
            writer.writerow(row)
            count += 1
    return count


def write_ndjson(dsn: str, out: str, limit: int | None) -> int:
    count = 0
    with open(out, "w", encoding="utf-8") as handle:
        for row in rows(dsn, limit):
            row["sale_date"] = row["sale_date"].isoformat()
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def write_xlsx(dsn: str, out: str, limit: int | None) -> int:
    workbook = xlsxwriter.Workbook(
        out,
        {
            "constant_memory": True,
            "strings_to_formulas": False,
            "strings_to_numbers": False,
            "strings_to_urls": False,
        },
    )
    sheet = workbook.add_worksheet("Records")
    header = workbook.add_format({"bold": True, "bg_color": "#D9D9D9"})
    money = workbook.add_format({"num_format": "$#,##0.00"})
    date = workbook.add_format({"num_format": "yyyy-mm-dd"})
    for col, name in enumerate(DEFAULT_COLUMNS):
        sheet.write(0, col, column(name).title, header)
        sheet.set_column(col, col, 16)
    sheet.freeze_panes(1, 0)
    count = 0
    for count, row in enumerate(rows(dsn, limit), start=1):
        for col, name in enumerate(DEFAULT_COLUMNS):
            value = row[name]
            if value is None:
                continue
            if name in MONEY:
                sheet.write(count, col, value / 100, money)
            elif isinstance(value, dt.date):
                sheet.write(count, col, value, date)
            else:
                sheet.write(count, col, value)
    sheet.autofilter(0, 0, count, len(DEFAULT_COLUMNS) - 1)
    workbook.close()
    return count


WRITERS = {"csv": write_csv, "ndjson": write_ndjson, "xlsx": write_xlsx}


def main(argv: list[str]) -> None:
    kind, dsn, out = argv[:3]
    limit = int(argv[3]) if len(argv) > 3 else None
    started = time.perf_counter()
    count = WRITERS[kind](dsn, out, limit)
    seconds = time.perf_counter() - started
    print(json.dumps({"rows": count, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}))


if __name__ == "__main__":
    main(sys.argv[1:])
