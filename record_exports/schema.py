"""The records database as SQLAlchemy Core metadata, one definition for PostgreSQL and SQLite."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Engine

STATUSES = ("SUCCESSFUL", "RETURN_LABEL_PROVIDED", "RETURN_CLOSED", "REFUND_NO_RETURN")
REQUEST_STATUSES = ("pending", "queued", "running", "succeeded", "failed", "rejected")

metadata = sa.MetaData()

# uuid on PostgreSQL; canonical 36-character text on SQLite, so ids read the same on both.
UUID_TYPE = sa.Uuid(as_uuid=False).with_variant(sa.String(36), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
ID_TYPE = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _in_list(column: str, values: tuple[str, ...]) -> str:
    """A CHECK constraint body; values are module constants, never user input."""
    quoted = ", ".join(f"'{value}'" for value in values)
    return f"{column} IN ({quoted})"


accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("id", UUID_TYPE, primary_key=True),
    sa.Column("account_code", sa.Text, nullable=False, unique=True),
    sa.Column("name", sa.Text, nullable=True),
)

MONEY_COLUMNS = (
    "sale_price_cents",
    "ebay_fees_cents",
    "amazon_price_cents",
    "amazon_tax_cents",
    "amazon_shipping_cents",
    "return_label_cost_cents",
)

bookkeeping_records = sa.Table(
    "bookkeeping_records",
    metadata,
    sa.Column("id", UUID_TYPE, primary_key=True),
    sa.Column("account_id", UUID_TYPE, sa.ForeignKey("accounts.id"), nullable=False),
    sa.Column("ebay_order_id", sa.Text, nullable=False),
    sa.Column("sale_date", sa.Date, nullable=False),
    sa.Column("item_name", sa.Text, nullable=False),
    sa.Column("qty", sa.Integer, nullable=False),
    sa.Column("sale_price_cents", sa.BigInteger, nullable=False),
    sa.Column("ebay_fees_cents", sa.BigInteger),
    sa.Column("amazon_price_cents", sa.BigInteger),
    sa.Column("amazon_tax_cents", sa.BigInteger),
    sa.Column("amazon_shipping_cents", sa.BigInteger),
    sa.Column("amazon_order_id", sa.Text),
    sa.Column("status", sa.Text, nullable=False),
    sa.Column("return_label_cost_cents", sa.BigInteger),
    sa.Column("created_at", TIMESTAMP, nullable=False),
    sa.Column("updated_at", TIMESTAMP, nullable=False),
    sa.Column("deleted_at", TIMESTAMP),
    sa.CheckConstraint("qty >= 1", name="ck_records_qty_positive"),
    *(
        sa.CheckConstraint(f"{name} >= 0", name=f"ck_records_{name}_not_negative")
        for name in MONEY_COLUMNS
    ),
    sa.CheckConstraint(_in_list("status", STATUSES), name="ck_records_status_known"),
    sa.Index("ix_records_account_sale_date", "account_id", "sale_date"),
    sa.Index("ix_records_updated_at_id", "updated_at", "id"),
)


def _remarks_table(name: str) -> sa.Table:
    return sa.Table(
        name,
        metadata,
        sa.Column(
            "record_id", UUID_TYPE, sa.ForeignKey("bookkeeping_records.id"), primary_key=True
        ),
        sa.Column("content", sa.Text, nullable=False),
    )


order_remarks = _remarks_table("order_remarks")
service_remarks = _remarks_table("service_remarks")

export_requests = sa.Table(
    "export_requests",
    metadata,
    sa.Column("id", ID_TYPE, sa.Identity(), primary_key=True, autoincrement=True),
    sa.Column("requested_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.Column("requested_by", sa.Text),
    sa.Column("params", JSON_TYPE, nullable=False),
    sa.Column("status", sa.Text, nullable=False, server_default="pending"),
    sa.Column("run_id", sa.Text),
    sa.Column("output_path", sa.Text),
    sa.Column("row_count", sa.BigInteger),
    sa.Column("error", sa.Text),
    sa.Column("updated_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.CheckConstraint(_in_list("status", REQUEST_STATUSES), name="ck_requests_status_known"),
    sa.Index("ix_export_requests_status_id", "status", "id"),
)


def create_schema(engine: Engine) -> None:
    """Create every table and index that is missing; running it twice changes nothing."""
    metadata.create_all(engine, checkfirst=True)
