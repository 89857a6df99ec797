"""The selection: filters, joins and column choice, against the same filters written in SQL."""

from __future__ import annotations

import json
import re
from pathlib import Path

from record_exports.columns import resolve_columns
from record_exports.database import DatabaseTarget
from record_exports.query import RecordFilters, build_query, source_columns
from tests.factories import oracle_copy_csv
from tests.record_exports.exporting import export, url_of


def test_filters_match_the_same_filters_in_sql(pg_records: DatabaseTarget, tmp_path: Path) -> None:
    url = url_of(pg_records)
    path, meta = export(
        pg_records,
        tmp_path,
        "filtered",
        account_codes=["ACC1", "ACC3"],
        statuses=["RETURN_CLOSED", "successful"],
        sale_date_from="2026-03-01",
        sale_date_to="2026-03-02",
    )
    where = (
        "r.account_id IN (SELECT id FROM accounts WHERE account_code IN ('ACC1', 'ACC3'))"
        " AND r.status IN ('RETURN_CLOSED', 'SUCCESSFUL')"
        " AND r.sale_date BETWEEN DATE '2026-03-01' AND DATE '2026-03-02'"
    )
    expected = oracle_copy_csv(url, where=where)
    assert path.read_bytes() == expected
    assert meta["row_count"] > 10
    assert meta["filters"]["statuses"] == ["RETURN_CLOSED", "SUCCESSFUL"]


def test_selected_columns_remarks_and_timestamps(
    pg_records: DatabaseTarget, tmp_path: Path
) -> None:
    path, _ = export(
        pg_records,
        tmp_path,
        "cols",
        format="ndjson",
        columns=["account_code", "id", "order_remark", "created_at", "profit_cents"],
        include_remarks=True,
        account_codes=["ACC1"],
    )
    rows = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    assert list(rows[0]) == ["account_code", "id", "order_remark", "created_at", "profit_cents"]
    assert {row["account_code"] for row in rows} == {"ACC1"}
    remarks = {row["order_remark"] for row in rows}
    assert {'=HYPERLINK("x")', "plain", None} <= remarks
    assert all(
        re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", r["created_at"]) for r in rows
    )


def test_source_columns_are_the_shown_ones_and_the_inputs_of_computed_ones() -> None:
    columns = resolve_columns(["id", "earnings_net_cents", "sale_price_cents"], False)
    assert source_columns(columns) == ["id", "sale_price_cents", "ebay_fees_cents"]
    profit = source_columns(resolve_columns(["profit_cents"], False))
    assert profit[0] == "status" and "return_label_cost_cents" in profit


FILTERS = RecordFilters(
    account_ids=("00000000-0000-4000-8000-000000000001",),
    statuses=("SUCCESSFUL",),
    sale_date_from="2026-03-01",
    sale_date_to="2026-03-02",
)


def test_postgresql_values_travel_as_settings_never_in_the_sql() -> None:
    """COPY takes no bind parameters: values go through set_config, read by current_setting."""
    query = build_query(resolve_columns([], False), False, FILTERS, is_postgresql=True)
    assert query.parameters == ()
    assert query.settings == {
        "record_exports.account_ids": json.dumps(list(FILTERS.account_ids)),
        "record_exports.statuses": '["SUCCESSFUL"]',
        "record_exports.sale_date_from": "2026-03-01",
        "record_exports.sale_date_to": "2026-03-02",
    }
    for value in ("SUCCESSFUL", "2026-03-0", FILTERS.account_ids[0]):
        assert value not in query.sql
    assert "ORDER BY bookkeeping_records.updated_at DESC, bookkeeping_records.id DESC" in query.sql


def test_sqlite_values_are_bound_parameters() -> None:
    query = build_query(resolve_columns(["id"], False), False, FILTERS, is_postgresql=False)
    assert query.settings == {}
    assert query.parameters == (*FILTERS.account_ids, "SUCCESSFUL", "2026-03-01", "2026-03-02")
    assert query.sql.count("?") == 4 and "SUCCESSFUL" not in query.sql


def test_joins_only_what_the_columns_need() -> None:
    plain = build_query(resolve_columns(["id"], False), False, RecordFilters(), is_postgresql=True)
    assert "JOIN" not in plain.sql
    joined = build_query(
        resolve_columns(["account_code", "order_remark"], True),
        True,
        RecordFilters(),
        is_postgresql=True,
    )
    assert "JOIN accounts" in joined.sql and "LEFT OUTER JOIN order_remarks" in joined.sql
    assert "service_remarks" not in joined.sql
