"""Hypothesis strategies for export settings as people and programs send them: valid values in
any case, and wrong types, deep nesting, huge strings and lists, unicode (emoji, NUL, RTL),
SQL fragments and path tricks. Shared by the property tests of the three input paths (CLI
options, `ExportConfig`, request rows), and the checks every accepted value must pass."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from record_exports.columns import ALL_COLUMNS
from record_exports.errors import ExportInputError
from record_exports.params import (
    PARAM_FIELDS,
    ExportParams,
    choices,
    field_label,
    parse_export_params,
)
from record_exports.query import RecordFilters, build_query
from record_exports.schema import STATUSES

SQL_FRAGMENTS = [
    "'; DROP TABLE records; --",
    "ACC1'; DROP TABLE accounts; --",
    "SUCCESSFUL' OR '1'='1",
    '" OR ""="',
    "1; DELETE FROM export_requests",
    "$$; SELECT pg_sleep(10); $$",
    "') UNION SELECT * FROM pg_shadow --",
    "current_setting('is_superuser')",
]
PATH_TRICKS = [
    "../../etc/passwd",
    "..",
    ".",
    "/etc/passwd",
    "/tmp/out.csv",
    "a/../../b.csv",
    "..\\..\\windows\\system32",
    "C:\\out.csv",
    "out\x00.csv",
    "x.csv/",
    "~/out.csv",
    " lead.csv",
    ".hidden.csv",
    "x.csv.manifest.json",
    ".x.csv.partial-0123abcd",
]
ODD_TEXT = [
    "",
    " ",
    "\x00",
    "🎉",
    "\u202eRTL override",
    "\u200f\u05e9\u05dc\u05d5\u05dd",
    "ſuccessful",  # upper-cases to SUCCESSFUL
    "ＣＳＶ",
    "٢٠٢٤-٠١-٠١",  # Arabic-Indic digits match \d
    "2024-02-30",
    "2024-13-01",
    "9999-12-31",
    "0001-01-01",
    "\n",
    "a\r\nb",
    "x" * 100_000,
]


def _case_variants(values: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.sampled_from(values).flatmap(
        lambda value: st.sampled_from([value, value.upper(), value.title(), f" {value} "])
    )


weird_text: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(SQL_FRAGMENTS + PATH_TRICKS + ODD_TEXT),
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=300),
)


def deep(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    weird_text,
)
json_values: st.SearchStrategy[Any] = st.one_of(
    json_scalars,
    st.recursive(
        json_scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=3)
        ),
        max_leaves=8,
    ),
    st.sampled_from([deep(50), ["ACC1"] * 5000, list(range(2000))]),
)
"""Any JSON value, adversarial ones weighted in. (Values nested thousands deep are in
`PATHOLOGICAL`: Hypothesis itself cannot print them.)"""

PATHOLOGICAL: list[tuple[str, dict[str, Any]]] = [
    ("bool nested 3000 deep", {"bom": deep(3000)}),
    ("list item nested 3000 deep", {"columns": [deep(3000)]}),
    ("date nested 3000 deep", {"sale_date_from": {"a": deep(3000)}}),
    ("unknown field of a megabyte", {"x" * 1_000_000: 1}),
    ("megabyte format", {"format": "x" * 1_000_000}),
    ("1000 unknown columns of 200 characters", {"columns": ["y" * 200] * 1000}),
    ("5000 account codes", {"account_codes": ["ACC1"] * 5000}),
    ("a manifest's name", {"format": "json", "output_name": "x.csv.manifest.json"}),
]
"""Values too big or too deep to be Hypothesis examples, checked one by one."""

account_codes = st.one_of(
    st.from_regex(r"[A-Za-z0-9_.-]{1,64}", fullmatch=True),
    st.sampled_from(["ACC1", "ACC2", "acc1", "NOSUCH"]),
    weird_text,
)
dates = st.one_of(
    st.dates().map(lambda day: day.isoformat()),
    st.sampled_from(["2026-03-01", "2026-03-03", ""]),
    weird_text,
)
output_names = st.one_of(
    st.from_regex(r"[A-Za-z0-9][A-Za-z0-9 _.+-]{0,40}", fullmatch=True),
    st.sampled_from(PATH_TRICKS),
    weird_text,
)


def field_values(name: str) -> st.SearchStrategy[Any]:
    """Values for one field: mostly its own kind (valid or nearly), sometimes anything."""
    own: dict[str, st.SearchStrategy[Any]] = {
        "format": _case_variants(choices_of("format")),
        "money": _case_variants(choices_of("money")),
        "compression": _case_variants(choices_of("compression")),
        "account_codes": st.lists(account_codes, max_size=4),
        "statuses": st.lists(st.one_of(_case_variants(STATUSES), weird_text), max_size=4),
        "sale_date_from": dates,
        "sale_date_to": dates,
        "columns": st.lists(
            st.one_of(st.sampled_from(list(ALL_COLUMNS)), weird_text), max_size=5, unique=True
        ),
        "include_remarks": st.booleans(),
        "bom": st.booleans(),
        "excel_safe": st.booleans(),
        "output_name": output_names,
    }
    return st.one_of(own[name], own[name], own[name], json_values)


def choices_of(name: str) -> tuple[str, ...]:
    from record_exports.columns import MoneyMode
    from record_exports.params import Compression, ExportFormat

    enum = {"format": ExportFormat, "money": MoneyMode, "compression": Compression}[name]
    return choices(enum)


raw_params: st.SearchStrategy[dict[str, Any]] = st.fixed_dictionaries(
    {},
    optional={name: field_values(name) for name in PARAM_FIELDS},
).flatmap(
    lambda fields: st.dictionaries(
        st.one_of(weird_text, st.sampled_from(["formats", "FORMAT", "output", "__class__"])),
        json_values,
        max_size=2,
    ).map(lambda extra: {**extra, **fields})
)
"""Request-row or run-config settings: known fields with adversarial values, sometimes unknown
fields too."""


def check_rejection(error: ExportInputError, raw: dict[str, Any]) -> None:
    """A rejection is one line, names the fields it blames, and blames real ones."""
    text = str(error)
    assert "\n" not in text and "\r" not in text, text[:300]
    assert len(text) < 20_000, len(text)
    for problem in error.problems:
        known = problem.field in PARAM_FIELDS or problem.field == "params"
        unknown_key = any(
            field_label(str(key)) == problem.field for key in raw if key not in PARAM_FIELDS
        )
        assert known or unknown_key, problem
        assert text.count(f"{problem.field}: ") >= 1, (problem.field, text[:300])


def check_file_name_stays_inside(folder: Path, params: ExportParams) -> None:
    """The file (and its manifest) land in `folder` itself, under a plain, visible name."""
    name = params.file_name("records_default")
    for candidate in (name, name + ".manifest.json"):
        path = folder / candidate
        assert path.parent == folder, candidate
        assert os.path.normpath(path) == str(path), candidate
        assert "\x00" not in candidate and "/" not in candidate and "\\" not in candidate
        assert not candidate.startswith(".") and candidate not in ("", ".", "..")
    assert not name.endswith(".manifest.json")


CANARY_DATES = ("1999-01-01", "1999-12-31")


def _filters(params: ExportParams, canary: bool) -> RecordFilters:
    codes = params.account_codes
    return RecordFilters(
        # Account codes stand in for the ids the database would resolve them to.
        account_ids=tuple(f"canary-{n}" for n in range(len(codes))) if canary else codes,
        statuses=tuple("CANARY" for _ in params.statuses) if canary else params.statuses,
        sale_date_from=(CANARY_DATES[0] if canary else params.sale_date_from.isoformat())
        if params.sale_date_from
        else None,
        sale_date_to=(CANARY_DATES[1] if canary else params.sale_date_to.isoformat())
        if params.sale_date_to
        else None,
    )


def check_values_never_in_sql(params: ExportParams) -> None:
    """The SQL of the export is the same text whatever the filter values are (each value a
    bound parameter, or a session setting on PostgreSQL's COPY path), and every value is
    among what travels beside the text."""
    for is_postgresql in (True, False):
        real = build_query(
            params.columns,
            params.include_remarks,
            _filters(params, False),
            is_postgresql=is_postgresql,
        )
        canary = build_query(
            params.columns,
            params.include_remarks,
            _filters(params, True),
            is_postgresql=is_postgresql,
        )
        assert real.sql == canary.sql
        carried = " ".join(map(str, (*real.parameters, *real.settings.values())))
        for value in (*params.account_codes, *params.statuses):
            assert value in carried


def parse_or_reject(raw: Any) -> ExportParams | None:
    """Parse `raw`; None when rejected (after checking the rejection)."""
    try:
        params = parse_export_params(raw)
    except ExportInputError as error:
        check_rejection(error, raw if isinstance(raw, dict) else {})
        return None
    assert parse_export_params(params.to_config()) == params
    return params
