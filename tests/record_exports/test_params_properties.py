"""Properties of `parse_export_params`, the one parser behind the CLI, run config and request
rows: any JSON value is either rejected with one line naming the fields, or parsed into
params whose file stays inside its folder and whose values never become SQL text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from record_exports.params import parse_export_params
from tests.hostile_values import (
    PATHOLOGICAL,
    check_file_name_stays_inside,
    check_values_never_in_sql,
    json_values,
    parse_or_reject,
    raw_params,
)

FOLDER = Path("/exports/requests/7")


@settings(max_examples=400, deadline=None)
@given(raw_params)
@example({"output_name": "../../etc/passwd", "account_codes": ["ACC1'; DROP TABLE accounts; --"]})
@example({"statuses": ["ſuccessful", " returN_closed "], "account_codes": ["A.b-1"] * 3})
def test_settings_are_rejected_naming_fields_or_parsed_safely(raw: dict[str, Any]) -> None:
    params = parse_or_reject(raw)
    if params is not None:
        check_file_name_stays_inside(FOLDER, params)
        check_values_never_in_sql(params)


@pytest.mark.parametrize(
    "raw", [raw for _, raw in PATHOLOGICAL], ids=[name for name, _ in PATHOLOGICAL]
)
def test_huge_and_deep_values_are_rejected_in_one_short_line(raw: dict[str, Any]) -> None:
    """Found here: a value nested 3000 deep raised RecursionError (its repr in the message),
    a megabyte field name made a megabyte message, `x.csv.manifest.json` as a JSON export
    overwrote the manifest of `x.csv`."""
    assert parse_or_reject(raw) is None


@settings(max_examples=100, deadline=None)
@given(json_values)
def test_anything_but_an_object_is_rejected_as_params(raw: Any) -> None:
    if isinstance(raw, dict):
        parse_or_reject(raw)
        return
    try:
        parse_export_params(raw)
    except Exception as error:  # noqa: BLE001 - the type is the assertion
        assert type(error).__name__ == "ExportInputError" and str(error).startswith("params: ")
    else:
        raise AssertionError(f"accepted {raw!r:.80}")


@settings(max_examples=200, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "account_codes": st.lists(
                st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True), max_size=5
            ),
            "statuses": st.lists(
                st.sampled_from(
                    ["SUCCESSFUL", "RETURN_LABEL_PROVIDED", "RETURN_CLOSED", "REFUND_NO_RETURN"]
                ),
                max_size=4,
            ),
            "sale_date_from": st.one_of(st.none(), st.dates().map(str)),
            "include_remarks": st.booleans(),
        }
    )
)
def test_valid_filters_travel_beside_the_sql_never_in_it(raw: dict[str, Any]) -> None:
    check_values_never_in_sql(parse_export_params(raw))
