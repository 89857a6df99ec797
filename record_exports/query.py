"""The SELECT behind an export, built with SQLAlchemy Core.

On PostgreSQL the ADBC driver reads results fastest (and in bounded memory) through
`COPY ... TO STDOUT (FORMAT binary)`, and COPY cannot take bind parameters. So filter
values travel as bound parameters of `set_config(...)` calls on the same connection, and
the query reads them back with `current_setting(...)`: no value is ever formatted into SQL.
On SQLite the same filters are ordinary bound parameters.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import ColumnElement, UnaryExpression

from record_exports.columns import ALL_COLUMNS, ColumnKind, OutputColumn
from record_exports.params import ExportParams
from record_exports.schema import (
    MONEY_COLUMNS,
    accounts,
    bookkeeping_records,
    order_remarks,
    service_remarks,
)

SETTING_PREFIX = "record_exports."
# On SQLite a nullable text column travels as never-NULL text plus this flag column
# (`<name>__is_null`); `sqlite_reader` puts the NULLs back. See `_sqlite_selected`.
SQLITE_NULL_FLAG_SUFFIX = "__is_null"
# What daily files are split by; both are also selected.
DAY_AND_ACCOUNT_KEYS = ("sale_date", "account_code")

# The record columns each computed field reads.
COMPUTED_INPUTS: dict[str, tuple[str, ...]] = {
    "earnings_net_cents": ("sale_price_cents", "ebay_fees_cents"),
    "cogs_total_cents": ("amazon_price_cents", "amazon_tax_cents", "amazon_shipping_cents"),
    "profit_cents": ("status", *MONEY_COLUMNS),
}


@dataclass(frozen=True)
class RecordFilters:
    """Filters with account codes already resolved to ids."""

    account_ids: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    sale_date_from: str | None = None
    sale_date_to: str | None = None

    @classmethod
    def from_params(cls, params: ExportParams, account_ids: Sequence[str]) -> RecordFilters:
        return cls(
            account_ids=tuple(account_ids),
            statuses=params.statuses,
            sale_date_from=params.sale_date_from.isoformat() if params.sale_date_from else None,
            sale_date_to=params.sale_date_to.isoformat() if params.sale_date_to else None,
        )


@dataclass(frozen=True)
class CompiledQuery:
    """SQL text plus how to bind its values on the chosen database."""

    sql: str
    parameters: tuple[Any, ...] = ()
    settings: dict[str, str] = field(default_factory=dict)


def source_columns(columns: Sequence[OutputColumn]) -> list[str]:
    """The stored columns an export must read: those it shows plus the inputs of computed ones."""
    needed: list[str] = []
    for column in columns:
        inputs = COMPUTED_INPUTS.get(column.name, (column.name,))
        for name in inputs:
            if name not in needed:
                needed.append(name)
    return needed


def _selected(name: str, is_postgresql: bool) -> ColumnElement[Any]:
    if name == "account_code":
        return accounts.c.account_code.label(name)
    if name == "order_remark":
        return order_remarks.c.content.label(name)
    if name == "service_remark":
        return service_remarks.c.content.label(name)
    record_column = bookkeeping_records.c[name]
    if name == "id" and is_postgresql:
        # ADBC returns uuid as binary; text is what every format writes.
        return sa.cast(record_column, sa.Text).label(name)
    return record_column.label(name)


def _is_nullable(name: str) -> bool:
    """Whether a source column can be NULL in the result: remarks come from outer joins."""
    if name in ("order_remark", "service_remark"):
        return True
    if name == "account_code":
        return False
    return bool(bookkeeping_records.c[name].nullable)


def _sqlite_selected(name: str) -> list[ColumnElement[Any]]:
    """A source column as SQLite returns it to ADBC.

    ADBC's SQLite driver types each result column by the values in its first batch, and a
    column with only NULLs there becomes int64, so the first text after it fails the read.
    A nullable text column (dates and timestamps are text on SQLite too) is therefore
    selected as text that is never NULL plus an integer flag saying where the NULLs were.
    """
    selected = _selected(name, is_postgresql=False)
    if ALL_COLUMNS[name] in (ColumnKind.INTEGER, ColumnKind.MONEY) or not _is_nullable(name):
        return [selected]
    value = selected.element
    return [
        sa.func.coalesce(value, "").label(name),
        value.is_(None).label(name + SQLITE_NULL_FLAG_SUFFIX),
    ]


def _sqlite_sort_key(column: Any) -> ColumnElement[Any]:
    """`+column`: SQLite may not walk an index for a term written so.

    Walking the `(updated_at, id)` index reads the table a page per row, in random order
    unless rows were written in `updated_at` order (the bench data was not); a scan and a
    sort (with `PRAGMA threads`, see `sqlite_reader`) was 1.3-1.6x faster there
    (bench/README.md), and it lets the planner pick the `(account_id, sale_date)` index
    for filters.
    """
    return UnaryExpression(column, operator=operators.custom_op("+"), type_=column.type)


class _Values:
    """Places filter values: a bound parameter on SQLite, a session setting on PostgreSQL."""

    def __init__(self, is_postgresql: bool) -> None:
        self.is_postgresql = is_postgresql
        self.settings: dict[str, str] = {}

    def scalar(self, name: str, value: str, type_: Any) -> ColumnElement[Any]:
        if not self.is_postgresql:
            # SQLite keeps dates and timestamps as ISO text, so text compares correctly.
            return sa.bindparam(name, value, type_=sa.String)
        self.settings[SETTING_PREFIX + name] = value
        # A scalar subquery runs once per query (an InitPlan); a bare `current_setting()` is
        # only stable, so PostgreSQL would re-read and re-cast it for every row it filters.
        return sa.select(sa.cast(self._setting(name), type_)).scalar_subquery()

    def members(self, name: str, values: Sequence[str], type_: Any) -> Any:
        """A list for IN: expanding bind on SQLite, a JSON array setting on PostgreSQL."""
        if not self.is_postgresql:
            return sa.bindparam(name, list(values), expanding=True)
        self.settings[SETTING_PREFIX + name] = json.dumps(list(values))
        elements = sa.func.json_array_elements_text(
            sa.cast(self._setting(name), postgresql.JSON)
        ).table_valued("value")
        return sa.select(sa.cast(elements.c.value, type_))

    @staticmethod
    def _setting(name: str) -> ColumnElement[Any]:
        # The setting's name is a constant of this module, never user input.
        return sa.func.current_setting(sa.literal_column(f"'{SETTING_PREFIX}{name}'"))


def _conditions(filters: RecordFilters, values: _Values) -> list[ColumnElement[bool]]:
    """The WHERE conditions of a selection (all on `bookkeeping_records`)."""
    records = bookkeeping_records
    conditions: list[ColumnElement[bool]] = [records.c.deleted_at.is_(None)]
    if filters.account_ids:
        account_ids = values.members("account_ids", filters.account_ids, records.c.account_id.type)
        conditions.append(records.c.account_id.in_(account_ids))
    if filters.statuses:
        conditions.append(
            records.c.status.in_(values.members("statuses", filters.statuses, sa.Text))
        )
    if filters.sale_date_from:
        conditions.append(
            records.c.sale_date >= values.scalar("sale_date_from", filters.sale_date_from, sa.Date)
        )
    if filters.sale_date_to:
        conditions.append(
            records.c.sale_date <= values.scalar("sale_date_to", filters.sale_date_to, sa.Date)
        )
    return conditions


def build_query(
    columns: Sequence[OutputColumn],
    include_remarks: bool,
    filters: RecordFilters,
    *,
    is_postgresql: bool,
    by_day_and_account: bool = False,
) -> CompiledQuery:
    """The ordered SELECT for an export, compiled for the target database.

    `by_day_and_account` (daily files) also selects `account_code` and puts each account's
    records of a sale day together, days ascending, each group in export order.
    """
    needed = source_columns(columns)
    if by_day_and_account:
        needed += [name for name in DAY_AND_ACCOUNT_KEYS if name not in needed]
    records = bookkeeping_records
    source: Any = records
    if "account_code" in needed:
        source = source.join(accounts, accounts.c.id == records.c.account_id)
    if include_remarks and "order_remark" in needed:
        source = source.outerjoin(order_remarks, order_remarks.c.record_id == records.c.id)
    if include_remarks and "service_remark" in needed:
        source = source.outerjoin(service_remarks, service_remarks.c.record_id == records.c.id)

    values = _Values(is_postgresql)
    conditions = _conditions(filters, values)

    # account_id, not account_code: the same grouping, compared as uuids, not collated text.
    groups = [records.c.sale_date, records.c.account_id] if by_day_and_account else []
    if is_postgresql:
        selected = [_selected(name, is_postgresql) for name in needed]
        order = [records.c.updated_at.desc(), records.c.id.desc()]
    else:
        selected = [element for name in needed for element in _sqlite_selected(name)]
        order = [_sqlite_sort_key(records.c.updated_at).desc(), records.c.id.desc()]
    statement = (
        sa.select(*selected).select_from(source).where(*conditions).order_by(*groups, *order)
    )
    return _compile(statement, values)


def _compile(statement: sa.Select[Any], values: _Values) -> CompiledQuery:
    if values.is_postgresql:
        compiled = statement.compile(dialect=postgresql.dialect())
        if compiled.params:
            raise AssertionError(f"unexpected bound parameters on the COPY path: {compiled.params}")
        return CompiledQuery(sql=str(compiled), settings=values.settings)
    dialect = sqlite.dialect(paramstyle="qmark")
    compiled = statement.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    positions = compiled.positiontup or []
    return CompiledQuery(
        sql=str(compiled), parameters=tuple(compiled.params[name] for name in positions)
    )
