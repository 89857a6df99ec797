"""The columns an export can name: their kinds and how each kind is typed, the default set,
and validation."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import polars as pl
import pyarrow as pa

from record_exports.errors import ExportInputError


class ColumnKind(StrEnum):
    TEXT = "text"
    INTEGER = "integer"
    MONEY = "money"
    DATE = "date"
    TIMESTAMP = "timestamp"


UTC = "UTC"


@dataclass(frozen=True)
class ColumnType:
    """How one kind of column is typed.

    `frame`: its Polars dtype in an export frame, what every sink is handed (frames.py makes
    every batch so, whatever the database). `sqlite_arrow`: its Arrow type as the SQLite reader
    builds batches; SQLite has no date types and keeps dates and timestamps as ISO text, which
    frames.py parses.
    """

    frame: pl.DataType
    sqlite_arrow: pa.DataType


COLUMN_TYPES: dict[ColumnKind, ColumnType] = {
    ColumnKind.TEXT: ColumnType(pl.String(), pa.string()),
    ColumnKind.INTEGER: ColumnType(pl.Int64(), pa.int64()),
    ColumnKind.MONEY: ColumnType(pl.Int64(), pa.int64()),
    ColumnKind.DATE: ColumnType(pl.Date(), pa.string()),
    ColumnKind.TIMESTAMP: ColumnType(pl.Datetime("us", UTC), pa.string()),
}
"""The one map from a column kind to its types (money is Int64 cents in every frame)."""


class MoneyMode(StrEnum):
    CENTS = "cents"
    DOLLARS = "dollars"


@dataclass(frozen=True)
class OutputColumn:
    """One exported column. `name` is the canonical (cents) name the engine's frames use."""

    name: str
    kind: ColumnKind

    @property
    def dtype(self) -> pl.DataType:
        """Its dtype in an export frame (`COLUMN_TYPES`)."""
        return COLUMN_TYPES[self.kind].frame

    @property
    def is_money(self) -> bool:
        return self.kind is ColumnKind.MONEY

    def output_name(self, money: MoneyMode) -> str:
        """`sale_price_cents` stays in cents mode and becomes `sale_price` in dollars mode."""
        if self.is_money and money is MoneyMode.DOLLARS:
            return self.name.removesuffix("_cents")
        return self.name

    @property
    def title(self) -> str:
        """Its Excel header (`EXCEL_HEADERS`): `sale_price_cents` -> `Sale Price`."""
        return EXCEL_HEADERS[self.name]


_T, _I, _M, _D, _TS = (
    ColumnKind.TEXT,
    ColumnKind.INTEGER,
    ColumnKind.MONEY,
    ColumnKind.DATE,
    ColumnKind.TIMESTAMP,
)

BASE_COLUMNS: dict[str, ColumnKind] = {
    "id": _T,
    "account_code": _T,
    "ebay_order_id": _T,
    "sale_date": _D,
    "item_name": _T,
    "qty": _I,
    "sale_price_cents": _M,
    "ebay_fees_cents": _M,
    "amazon_price_cents": _M,
    "amazon_tax_cents": _M,
    "amazon_shipping_cents": _M,
    "amazon_order_id": _T,
    "status": _T,
    "return_label_cost_cents": _M,
    "created_at": _TS,
    "updated_at": _TS,
}
COMPUTED_COLUMNS: dict[str, ColumnKind] = {
    "earnings_net_cents": _M,
    "cogs_total_cents": _M,
    "profit_cents": _M,
}
REMARK_COLUMNS: dict[str, ColumnKind] = {"order_remark": _T, "service_remark": _T}
ALL_COLUMNS: dict[str, ColumnKind] = {**BASE_COLUMNS, **COMPUTED_COLUMNS, **REMARK_COLUMNS}

EXCEL_HEADERS: dict[str, str] = {
    "id": "ID",
    "account_code": "Account Code",
    "ebay_order_id": "eBay Order ID",
    "sale_date": "Sale Date",
    "item_name": "Item Name",
    "qty": "Qty",
    "sale_price_cents": "Sale Price",
    "ebay_fees_cents": "eBay Fees",
    "amazon_price_cents": "Amazon Price",
    "amazon_tax_cents": "Amazon Tax",
    "amazon_shipping_cents": "Amazon Shipping",
    "amazon_order_id": "Amazon Order ID",
    "status": "Status",
    "return_label_cost_cents": "Return Label Cost",
    "created_at": "Created At (UTC)",
    "updated_at": "Updated At (UTC)",
    "earnings_net_cents": "Earnings Net",
    "cogs_total_cents": "COGS Total",
    "profit_cents": "Profit",
    "order_remark": "Order Remark",
    "service_remark": "Service Remark",
}
"""The header of each column in an Excel sheet, as accountants write them: "ID", "eBay Order
ID", "COGS Total". Money columns hold dollars there, so no header says cents; timestamps are
UTC datetime cells, which Excel shows without a zone, so their headers say it."""

DEFAULT_COLUMNS: tuple[str, ...] = (
    "id",
    "ebay_order_id",
    "sale_date",
    "item_name",
    "qty",
    "sale_price_cents",
    "ebay_fees_cents",
    "earnings_net_cents",
    "amazon_price_cents",
    "amazon_tax_cents",
    "amazon_shipping_cents",
    "cogs_total_cents",
    "amazon_order_id",
    "status",
    "return_label_cost_cents",
    "profit_cents",
)


def column(name: str) -> OutputColumn:
    return OutputColumn(name, ALL_COLUMNS[name])


def resolve_columns(requested: Sequence[str], include_remarks: bool) -> tuple[OutputColumn, ...]:
    """The columns to export, in order; errors list the valid names."""
    names = list(requested) or [
        *DEFAULT_COLUMNS,
        *(REMARK_COLUMNS if include_remarks else ()),
    ]
    unknown = [name for name in names if name not in ALL_COLUMNS]
    if unknown:
        valid = ", ".join(ALL_COLUMNS)
        raise ExportInputError(
            "columns",
            f"unknown column(s) {', '.join(repr(name[:40]) for name in unknown[:5])}"
            f"{f' and {len(unknown) - 5} more' if len(unknown) > 5 else ''} (valid names: {valid})",
        )
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ExportInputError("columns", f"column(s) named twice: {', '.join(duplicates)}")
    remarks = [name for name in names if name in REMARK_COLUMNS]
    if remarks and not include_remarks:
        raise ExportInputError(
            "columns",
            f"{', '.join(remarks)} need include_remarks=true (remarks are joined only on request)",
        )
    return tuple(column(name) for name in names)
