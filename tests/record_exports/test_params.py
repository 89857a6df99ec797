"""Bad input is refused before any query, with the field named and the valid choices listed."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pytest

from record_exports.columns import DEFAULT_COLUMNS, MoneyMode
from record_exports.errors import ExportInputError
from record_exports.params import (
    FIELD_HELP,
    PARAM_FIELDS,
    AccountCheck,
    ExportFormat,
    parse_export_params,
)


def rejected(raw: Any, unknown_accounts: AccountCheck | None = None) -> ExportInputError:
    with pytest.raises(ExportInputError) as caught:
        parse_export_params(raw, unknown_accounts)
    return caught.value


def test_defaults() -> None:
    params = parse_export_params({})
    assert params.format is ExportFormat.CSV
    assert [column.name for column in params.columns] == list(DEFAULT_COLUMNS)
    assert params.file_name("x") == "x.csv"


def test_remarks_are_appended_to_defaults() -> None:
    params = parse_export_params({"include_remarks": True})
    assert [c.name for c in params.columns][-2:] == ["order_remark", "service_remark"]


def test_full_valid_config() -> None:
    params = parse_export_params(
        {
            "format": "ndjson",
            "account_codes": ["ACC1", "ACC1", "ACC2"],
            "statuses": ["successful", "RETURN_CLOSED"],
            "sale_date_from": "2026-01-01",
            "sale_date_to": "2026-01-31",
            "columns": ["account_code", "profit_cents"],
            "money": "dollars",
            "compression": "gzip",
            "output_name": "January report",
        }
    )
    assert params.account_codes == ("ACC1", "ACC2")
    assert params.statuses == ("SUCCESSFUL", "RETURN_CLOSED")
    assert params.sale_date_to == dt.date(2026, 1, 31)
    assert params.column_names() == ["account_code", "profit"]
    assert params.file_name("ignored") == "January report.ndjson.gz"


@pytest.mark.parametrize(
    ("raw", "field", "hint"),
    [
        ({"format": "xml"}, "format", "csv, ndjson, json, xlsx, parquet"),
        ({"format": 3}, "format", "must be one of"),
        ({"columns": ["id", "nope"]}, "columns", "valid names: id, account_code"),
        ({"columns": ["order_remark"]}, "columns", "include_remarks"),
        ({"columns": ["id", "id"]}, "columns", "twice"),
        ({"columns": "id,qty"}, "columns", "list of strings"),
        ({"sale_date_from": "2026-02-01", "sale_date_to": "2026-01-01"}, "sale_date_from", "after"),
        ({"sale_date_from": "01/02/2026"}, "sale_date_from", "YYYY-MM-DD"),
        ({"sale_date_to": "2026-02-30"}, "sale_date_to", "not a real date"),
        ({"statuses": ["SHIPPED"]}, "statuses", "SUCCESSFUL, RETURN_LABEL_PROVIDED"),
        ({"statuses": [1]}, "statuses", "strings only"),
        ({"account_codes": ["ACC1'; DROP TABLE accounts; --"]}, "account_codes", "malformed"),
        ({"account_codes": ["A"] * 1001}, "account_codes", "at most 1000"),
        ({"account_codes": ["x" * 201]}, "account_codes", "longer than"),
        ({"money": "euros"}, "money", "cents, dollars"),
        ({"compression": "brotli"}, "compression", "none, gzip, zstd"),
        ({"compression": "gzip", "format": "xlsx"}, "compression", "csv, ndjson and json"),
        ({"bom": True, "format": "json"}, "bom", "csv only"),
        ({"excel_safe": True, "format": "xlsx"}, "excel_safe", "csv only"),
        ({"bom": "yes"}, "bom", "true or false"),
        ({"include_remarks": 1}, "include_remarks", "true or false"),
        ({"output_name": "../etc/passwd"}, "output_name", "plain file name"),
        ({"output_name": "a/b.csv"}, "output_name", "plain file name"),
        ({"output_name": "a\\b.csv"}, "output_name", "plain file name"),
        ({"output_name": ".hidden"}, "output_name", "usable file name"),
        ({"output_name": "x" * 300}, "output_name", "usable file name"),
        ({"output_name": "bad\nname"}, "output_name", "usable file name"),
        ({"output_name": 5}, "output_name", "file name"),
        ({"surprise": 1}, "surprise", "valid fields: format"),
    ],
)
def test_invalid_field_is_named(raw: dict[str, Any], field: str, hint: str) -> None:
    error = rejected(raw)
    assert error.field == field
    assert hint in str(error)


def test_every_bad_field_is_named_once_in_one_error() -> None:
    """A person fixes a config in one go: the error lists every bad field, each once."""
    error = rejected(
        {
            "format": "xlsx",
            "sale_date_to": "2026-11-31",
            "account_codes": ["ACC1", "NOPE", "GONE"],
            "bom": True,
            "statuses": ["SHIPPED"],
            "money": "euros",
        },
        unknown_accounts=lambda codes: [code for code in codes if code != "ACC1"],
    )
    assert error.fields == ["account_codes", "statuses", "sale_date_to", "money", "bom"]
    assert str(error) == "; ".join(
        [
            "account_codes: unknown account code(s): NOPE, GONE",
            "statuses: unknown status(es) 'SHIPPED' (valid: SUCCESSFUL, RETURN_LABEL_PROVIDED, "
            "RETURN_CLOSED, REFUND_NO_RETURN)",
            "sale_date_to: '2026-11-31' is not a real date",
            "money: unknown value 'euros' (valid: cents, dollars)",
            "bom: applies to csv only, not xlsx",
        ]
    )
    assert "\n" not in str(error)


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        # A bad format is not also held against the options that depend on it.
        ({"format": "xml", "bom": True, "compression": "gzip"}, ["format"]),
        # A bad date is not compared with the other one.
        ({"sale_date_from": "2026-02-31", "sale_date_to": "2026-01-01"}, ["sale_date_from"]),
        # With include_remarks itself bad, naming a remark column is not a second problem.
        ({"include_remarks": "yes", "columns": ["order_remark"]}, ["include_remarks"]),
        # Malformed codes are not looked up.
        ({"account_codes": ["bad code"]}, ["account_codes"]),
    ],
)
def test_a_problem_is_not_reported_twice(raw: dict[str, Any], fields: list[str]) -> None:
    assert rejected(raw, unknown_accounts=lambda codes: list(codes)).fields == fields


def test_account_lookup_only_with_valid_codes() -> None:
    asked: list[list[str]] = []

    def lookup(codes: Sequence[str]) -> list[str]:
        asked.append(list(codes))
        return []

    assert parse_export_params({"account_codes": ["ACC1", "ACC1"]}, lookup).account_codes == (
        "ACC1",
    )
    assert parse_export_params({}, lookup).account_codes == ()
    assert asked == [["ACC1"]]


def test_every_field_is_described_with_its_choices() -> None:
    assert list(FIELD_HELP) == list(PARAM_FIELDS)
    assert "csv, ndjson, json, xlsx, parquet" in FIELD_HELP["format"]
    assert (
        "SUCCESSFUL, RETURN_LABEL_PROVIDED, RETURN_CLOSED, REFUND_NO_RETURN"
        in (FIELD_HELP["statuses"])
    )
    assert "none, gzip, zstd" in FIELD_HELP["compression"]
    for name in ("sale_date_from", "sale_date_to"):
        assert "YYYY-MM-DD" in FIELD_HELP[name]
    for name in ("account_codes", "statuses", "columns", "output_name", "sale_date_to"):
        assert "Empty or not given:" in FIELD_HELP[name]
    assert ", ".join(DEFAULT_COLUMNS) in FIELD_HELP["columns"]


def test_excel_files_hold_dollars_under_their_headers() -> None:
    sheet = parse_export_params({"format": "xlsx", "columns": ["id", "cogs_total_cents"]})
    assert (sheet.money, sheet.money_in_file) == (MoneyMode.CENTS, MoneyMode.DOLLARS)
    assert sheet.column_names() == ["ID", "COGS Total"]
    text = parse_export_params({"format": "csv", "columns": ["id", "cogs_total_cents"]})
    assert text.money_in_file is MoneyMode.CENTS
    assert text.column_names() == ["id", "cogs_total_cents"]


@pytest.mark.parametrize("raw", [[], "csv", 5, None])
def test_params_must_be_an_object(raw: Any) -> None:
    assert rejected(raw).field == "params"
