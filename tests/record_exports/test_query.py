"""The selection: filters, joins and column choice, against the same filters written in SQL."""

from __future__ import annotations

import json
import re
from pathlib import Path

from record_exports.database import DatabaseTarget
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
