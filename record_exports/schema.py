"""The records database as SQLAlchemy Core metadata, one definition for PostgreSQL and SQLite."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, Engine

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
    # Daily exports read whole sale days of every account: one day, or a range in order.
    sa.Index("ix_records_sale_date_account", "sale_date", "account_id"),
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


record_changes = sa.Table(
    "record_changes",
    metadata,
    # Assigned by the database, never reused (AUTOINCREMENT on SQLite): a change is known
    # by its id, not by any machine's clock.
    sa.Column("id", ID_TYPE, sa.Identity(), primary_key=True, autoincrement=True),
    sa.Column("account_id", UUID_TYPE, nullable=False),
    sa.Column("sale_date", sa.Date, nullable=False),
    # For people reading the table; nothing decides by it.
    sa.Column("changed_at", TIMESTAMP, nullable=False, server_default=sa.func.now()),
    sa.Index("ix_record_changes_sale_date_account", "sale_date", "account_id"),
    sqlite_autoincrement=True,
)
"""The (account, sale day) of every change to `bookkeeping_records`, written by the triggers
below and deleted by the daily export that has covered it (`change_log.py`)."""

# One row per distinct (account, day) a statement touched: a bulk load of a million records
# adds one row per account-day, not a million. An update that moves a record to another
# account or day logs both. Transition tables need PostgreSQL 10 or later.
_POSTGRESQL_CHANGE_TRIGGERS = [
    """
    CREATE OR REPLACE FUNCTION record_changes_log() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'INSERT' THEN
            INSERT INTO record_changes (account_id, sale_date)
            SELECT DISTINCT account_id, sale_date FROM new_rows;
        ELSIF TG_OP = 'UPDATE' THEN
            INSERT INTO record_changes (account_id, sale_date)
            SELECT account_id, sale_date FROM new_rows
            UNION SELECT account_id, sale_date FROM old_rows;
        ELSE
            INSERT INTO record_changes (account_id, sale_date)
            SELECT DISTINCT account_id, sale_date FROM old_rows;
        END IF;
        RETURN NULL;
    END $$
    """,
    "DROP TRIGGER IF EXISTS record_changes_insert ON bookkeeping_records",
    "DROP TRIGGER IF EXISTS record_changes_update ON bookkeeping_records",
    "DROP TRIGGER IF EXISTS record_changes_delete ON bookkeeping_records",
    """
    CREATE TRIGGER record_changes_insert AFTER INSERT ON bookkeeping_records
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION record_changes_log()
    """,
    """
    CREATE TRIGGER record_changes_update AFTER UPDATE ON bookkeeping_records
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION record_changes_log()
    """,
    """
    CREATE TRIGGER record_changes_delete AFTER DELETE ON bookkeeping_records
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION record_changes_log()
    """,
]

# SQLite has row triggers only: one change row per record changed.
_SQLITE_CHANGE_TRIGGERS = [
    """
    CREATE TRIGGER IF NOT EXISTS record_changes_insert AFTER INSERT ON bookkeeping_records
    BEGIN
        INSERT INTO record_changes (account_id, sale_date) VALUES (NEW.account_id, NEW.sale_date);
    END
    """,
    """
    CREATE TRIGGER IF NOT EXISTS record_changes_update AFTER UPDATE ON bookkeeping_records
    BEGIN
        INSERT INTO record_changes (account_id, sale_date) VALUES (NEW.account_id, NEW.sale_date);
        INSERT INTO record_changes (account_id, sale_date)
        SELECT OLD.account_id, OLD.sale_date
        WHERE OLD.account_id IS NOT NEW.account_id OR OLD.sale_date IS NOT NEW.sale_date;
    END
    """,
    """
    CREATE TRIGGER IF NOT EXISTS record_changes_delete AFTER DELETE ON bookkeeping_records
    BEGIN
        INSERT INTO record_changes (account_id, sale_date) VALUES (OLD.account_id, OLD.sale_date);
    END
    """,
]


CHANGE_TRIGGERS = ("record_changes_insert", "record_changes_update", "record_changes_delete")


def change_triggers_present(connection: Connection) -> bool:
    """Whether all three triggers that fill `record_changes` exist on the records table."""
    if connection.dialect.name == "postgresql":
        query = sa.text(
            "SELECT tgname FROM pg_trigger "
            "WHERE tgrelid = 'bookkeeping_records'::regclass AND NOT tgisinternal"
        )
    else:
        query = sa.text(
            "SELECT name FROM sqlite_master "
            "WHERE type = 'trigger' AND tbl_name = 'bookkeeping_records'"
        )
    return set(CHANGE_TRIGGERS) <= set(connection.execute(query).scalars())


def install_change_triggers(connection: Connection) -> None:
    """(Re)create the triggers that fill `record_changes`; constant SQL, no values."""
    statements = (
        _POSTGRESQL_CHANGE_TRIGGERS
        if connection.dialect.name == "postgresql"
        else _SQLITE_CHANGE_TRIGGERS
    )
    for statement in statements:
        connection.exec_driver_sql(statement)


def create_schema(engine: Engine) -> None:
    """Create every table, index and trigger that is missing; running it twice changes nothing.

    Indexes added to an existing table by a later version are created too (`create_all`
    only creates the indexes of tables it creates). Triggers are (re)created only when one is
    missing: creating a trigger locks the records table against every reader and writer, so a
    schema that is complete costs catalog reads only.
    """
    metadata.create_all(engine, checkfirst=True)
    with engine.begin() as connection:
        inspector = sa.inspect(connection)
        for table in metadata.sorted_tables:
            present = {index["name"] for index in inspector.get_indexes(table.name)}
            for index in table.indexes:
                if index.name not in present:
                    index.create(connection)
        if not change_triggers_present(connection):
            install_change_triggers(connection)
