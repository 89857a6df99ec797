"""Validated export parameters: one parser for the CLI, the Dagster run config and request rows.

Request rows come from another program, so the parser trusts nothing: every field is
type-checked, unknown fields are refused, lists are bounded. It reports every bad field at
once, each by name, so a person fixes a config in one go.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import reprlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from record_exports.columns import (
    ALL_COLUMNS,
    DEFAULT_COLUMNS,
    MoneyMode,
    OutputColumn,
    resolve_columns,
)
from record_exports.errors import ExportInputError, InputProblem
from record_exports.manifest import MANIFEST_SUFFIX
from record_exports.schema import STATUSES

MAX_LIST_ITEMS = 1000
MAX_TEXT_LENGTH = 200
ACCOUNT_CODE_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
OUTPUT_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.+-]{0,199}$")

_T = TypeVar("_T")

_PREVIEW = reprlib.Repr()
_PREVIEW.maxlevel, _PREVIEW.maxstring, _PREVIEW.maxother = 2, 60, 60
_PREVIEW.maxlist = _PREVIEW.maxtuple = _PREVIEW.maxdict = 4


def preview(value: Any) -> str:
    """A short repr of a bad value for an error message. Bounded in size and depth: a request
    row may hold a huge or deeply nested value, whose full `repr` would be megabytes long or
    exceed Python's recursion limit (found by tests/record_exports/test_params_properties.py)."""
    return _PREVIEW.repr(value)


class ExportFormat(StrEnum):
    CSV = "csv"
    NDJSON = "ndjson"
    JSON = "json"
    XLSX = "xlsx"
    PARQUET = "parquet"

    @property
    def extension(self) -> str:
        return self.value


class Compression(StrEnum):
    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"

    @property
    def suffix(self) -> str:
        return {"none": "", "gzip": ".gz", "zstd": ".zst"}[self.value]


TEXT_FORMATS = (ExportFormat.CSV, ExportFormat.NDJSON, ExportFormat.JSON)


def choices(enum: type[StrEnum]) -> tuple[str, ...]:
    """The values a setting of this enum takes, in order: what run config, request rows and
    the CLI spell (case aside), and what error messages list."""
    return tuple(member.value for member in enum)


@dataclass(frozen=True)
class ExportParams:
    """One export's settings, the one definition of the export options.

    A new option is a field here, its parsing in `parse_export_params` (and in `to_config`
    only if its value is not a plain bool, string, enum, date or tuple), its description in
    `FIELD_HELP`, then a field of `ExportConfig` (pipelines/export_job.py) and an option of
    the CLI (pipelines/cli.py); tests/pipelines/test_export_job.py fails until all of them
    agree.
    """

    format: ExportFormat = ExportFormat.CSV
    account_codes: tuple[str, ...] = ()
    statuses: tuple[str, ...] = ()
    sale_date_from: dt.date | None = None
    sale_date_to: dt.date | None = None
    columns: tuple[OutputColumn, ...] = field(default_factory=lambda: resolve_columns([], False))
    include_remarks: bool = False
    money: MoneyMode = MoneyMode.CENTS
    bom: bool = False
    excel_safe: bool = False
    compression: Compression = Compression.NONE
    output_name: str | None = None

    @property
    def file_suffix(self) -> str:
        return f".{self.format.extension}{self.compression.suffix}"

    def filters(self) -> dict[str, Any]:
        """The filters as plain JSON values, for manifests and run metadata."""
        return {
            "account_codes": list(self.account_codes),
            "statuses": list(self.statuses),
            "sale_date_from": self.sale_date_from.isoformat() if self.sale_date_from else None,
            "sale_date_to": self.sale_date_to.isoformat() if self.sale_date_to else None,
        }

    @property
    def money_in_file(self) -> MoneyMode:
        """How money appears in the file: as `money` says, except Excel files, whose money
        cells always hold dollars (sinks/xlsx_cells.py)."""
        return MoneyMode.DOLLARS if self.format is ExportFormat.XLSX else self.money

    def column_names(self) -> list[str]:
        """The columns as they appear in the file: the header of each Excel column
        (`EXCEL_HEADERS`), the name of each field elsewhere (`sale_price` in dollars mode)."""
        if self.format is ExportFormat.XLSX:
            return [column.title for column in self.columns]
        return [column.output_name(self.money) for column in self.columns]

    def file_name(self, default_stem: str) -> str:
        """`output_name` with the format's extension added when it lacks it."""
        name = self.output_name or default_stem
        return name if name.endswith(self.file_suffix) else name + self.file_suffix

    def to_config(self) -> dict[str, Any]:
        """The params as run config of `ExportConfig` and as request-row JSON, in canonical
        form: enum values, ISO dates, lists, `columns` empty for the default set, unset
        optional fields left out. `parse_export_params(params.to_config()) == params`."""
        config: dict[str, Any] = {}
        for spec in dataclasses.fields(self):
            value = getattr(self, spec.name)
            if value is None:
                continue
            if spec.name == "columns":
                default = resolve_columns([], self.include_remarks)
                value = [] if value == default else [column.name for column in value]
            elif isinstance(value, StrEnum):
                value = value.value
            elif isinstance(value, dt.date):
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            config[spec.name] = value
        return config


PARAM_FIELDS = tuple(spec.name for spec in dataclasses.fields(ExportParams))

FIELD_HELP: dict[str, str] = {
    "format": f"File format: {', '.join(choices(ExportFormat))}.",
    "account_codes": (
        "Accounts to export, by account code (such as ACC1; letters, digits, '_', '.', '-'), "
        f"at most {MAX_LIST_ITEMS:,}. Empty or not given: every account. An unknown code "
        "stops the export before it reads a record."
    ),
    "statuses": (
        f"Record statuses to export: {', '.join(STATUSES)}. Empty or not given: every status."
    ),
    "sale_date_from": (
        "First sale day to export, YYYY-MM-DD, inclusive. Empty or not given: from the "
        "earliest record."
    ),
    "sale_date_to": (
        "Last sale day to export, YYYY-MM-DD, inclusive. Empty or not given: up to the latest "
        "record."
    ),
    "columns": (
        f"Columns to export, in this order; any of {', '.join(ALL_COLUMNS)} (the remarks need "
        f"include_remarks). Empty or not given: {', '.join(DEFAULT_COLUMNS)}, then the "
        "remarks when include_remarks is set."
    ),
    "include_remarks": (
        "Join each record's order and service remarks: order_remark and service_remark follow "
        "the default columns and may be named in columns."
    ),
    "money": (
        "Money columns as integer cents (sale_price_cents 1234) or as exact dollars with two "
        "decimals (sale_price 12.34). Excel files always hold dollars, whatever this says."
    ),
    "bom": "CSV only: start the file with a UTF-8 byte order mark, so Excel reads it as UTF-8.",
    "excel_safe": (
        "CSV only: put ' before text cells starting with =, +, -, @, tab or CR, so a "
        "spreadsheet never runs them as formulas. This changes the data."
    ),
    "compression": (
        f"Compression of CSV, NDJSON and JSON files: {', '.join(choices(Compression))} "
        "(the file name gets .gz or .zst). Excel and Parquet files are compressed inside."
    ),
    "output_name": (
        "File name without folder; the format's extension is added when missing. Empty or not "
        "given: records_<UTC time>_<run id>.<ext>."
    ),
}
"""What each option means, for the Launchpad (ExportConfig's field descriptions) and the CLI's
help; allowed values come from the enums and the column list, never typed twice."""

AccountCheck = Callable[[Sequence[str]], Sequence[str]]
"""Given account codes, the ones that do not exist (a lookup in the records database)."""


def _choice(raw: Mapping[str, Any], name: str, enum: type[StrEnum], default: StrEnum) -> Any:
    value = raw.get(name, default.value)
    if value is None:
        return default
    valid = ", ".join(choices(enum))
    if not isinstance(value, str):
        raise ExportInputError(name, f"must be one of {valid}, got {type(value).__name__}")
    try:
        return enum(value.strip().lower())
    except ValueError:
        raise ExportInputError(name, f"unknown value {value[:60]!r} (valid: {valid})") from None


def _flag(raw: Mapping[str, Any], name: str) -> bool:
    value = raw.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ExportInputError(name, f"must be true or false, got {preview(value)}")
    return value


def _text_list(raw: Mapping[str, Any], name: str) -> list[str]:
    value = raw.get(name, [])
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ExportInputError(name, f"must be a list of strings, got {type(value).__name__}")
    if len(value) > MAX_LIST_ITEMS:
        raise ExportInputError(name, f"has {len(value)} items, at most {MAX_LIST_ITEMS}")
    for item in value:
        if not isinstance(item, str):
            raise ExportInputError(name, f"must hold strings only, got {preview(item)}")
        if len(item) > MAX_TEXT_LENGTH:
            raise ExportInputError(name, f"has an item longer than {MAX_TEXT_LENGTH} characters")
    return [item.strip() for item in value]


def _date(raw: Mapping[str, Any], name: str) -> dt.date | None:
    value = raw.get(name)
    if value is None or value == "":
        return None
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
        raise ExportInputError(name, f"must be a date YYYY-MM-DD, got {preview(value)}")
    try:
        return dt.date.fromisoformat(value.strip())
    except ValueError:
        raise ExportInputError(name, f"{value!r} is not a real date") from None


def _account_codes(raw: Mapping[str, Any]) -> tuple[str, ...]:
    codes = _text_list(raw, "account_codes")
    bad = [code for code in codes if not ACCOUNT_CODE_PATTERN.fullmatch(code)]
    if bad:
        raise ExportInputError(
            "account_codes",
            f"malformed code(s) {', '.join(repr(code[:40]) for code in bad[:5])} "
            "(codes are letters, digits, '_', '.', '-')",
        )
    return tuple(dict.fromkeys(codes))


def unknown_accounts_error(unknown: Sequence[str]) -> ExportInputError:
    """The error for account codes no account has (at least one)."""
    shown = ", ".join(code[:40] for code in unknown[:20])
    more = f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
    return ExportInputError("account_codes", f"unknown account code(s): {shown}{more}")


def _known_accounts(codes: tuple[str, ...], check: AccountCheck | None) -> tuple[str, ...]:
    unknown = list(check(codes)) if check is not None and codes else []
    if unknown:
        raise unknown_accounts_error(unknown)
    return codes


def _statuses(raw: Mapping[str, Any]) -> tuple[str, ...]:
    statuses = [status.upper() for status in _text_list(raw, "statuses")]
    unknown = [status for status in statuses if status not in STATUSES]
    if unknown:
        raise ExportInputError(
            "statuses",
            f"unknown status(es) {', '.join(repr(s[:40]) for s in unknown[:5])} "
            f"(valid: {', '.join(STATUSES)})",
        )
    return tuple(dict.fromkeys(statuses))


def _output_name(raw: Mapping[str, Any]) -> str | None:
    value = raw.get("output_name")
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ExportInputError("output_name", f"must be a file name, got {type(value).__name__}")
    if "/" in value or "\\" in value or ".." in value:
        raise ExportInputError(
            "output_name", f"{value[:60]!r} must be a plain file name: no '/', '\\' or '..'"
        )
    if value.lower().endswith(MANIFEST_SUFFIX):
        # `x.csv.manifest.json` as a JSON export would overwrite the manifest of `x.csv`.
        raise ExportInputError(
            "output_name", f"{value[:60]!r} must not end in {MANIFEST_SUFFIX} (manifests' names)"
        )
    if not OUTPUT_NAME_PATTERN.fullmatch(value):
        raise ExportInputError(
            "output_name",
            f"{value[:60]!r} is not a usable file name: start with a letter or digit, then "
            "letters, digits, space, '_', '.', '+', '-' (at most 200 characters)",
        )
    return value


def field_label(name: str) -> str:
    """How an error names an unknown field: cut to 40 characters, control characters escaped
    (a field named by a carriage return must not break the one-line error)."""
    return repr(name[:40])[1:-1]


class _Problems:
    """Runs each field's check and keeps every problem, so one error can name them all."""

    def __init__(self) -> None:
        self.found: list[InputProblem] = []

    def check(self, parse: Callable[[], _T], fallback: _T) -> tuple[_T, bool]:
        """`parse()` and True, or `fallback` and False with its problems kept."""
        try:
            return parse(), True
        except ExportInputError as error:
            self.found.extend(error.problems)
            return fallback, False

    def add(self, field: str, message: str) -> None:
        self.found.append(InputProblem(field, message))


def parse_export_params(
    raw: Mapping[str, Any], unknown_accounts: AccountCheck | None = None
) -> ExportParams:
    """Validate JSON-like settings into `ExportParams`, or raise one `ExportInputError`
    naming every bad field once.

    `unknown_accounts` (a lookup in the records database) lets the same error also name
    account codes that do not exist; without it, only their spelling is checked. A field
    whose value is bad is not checked again against other fields (a malformed date is not
    also compared with the other date).
    """
    if not isinstance(raw, Mapping):
        raise ExportInputError("params", f"must be a JSON object, got {type(raw).__name__}")
    problems = _Problems()
    unknown = [key for key in raw if key not in PARAM_FIELDS]
    if unknown:
        names = ", ".join(repr(str(key)[:40]) for key in unknown[:5])
        problems.add(
            field_label(unknown[0]) if isinstance(unknown[0], str) else "params",
            f"unknown field(s) {names} (valid fields: {', '.join(PARAM_FIELDS)})",
        )
    export_format, format_ok = problems.check(
        lambda: _choice(raw, "format", ExportFormat, ExportFormat.CSV), ExportFormat.CSV
    )
    no_text: tuple[str, ...] = ()
    spelled, _ = problems.check(lambda: _account_codes(raw), no_text)
    codes, _ = problems.check(lambda: _known_accounts(spelled, unknown_accounts), spelled)
    statuses, _ = problems.check(lambda: _statuses(raw), no_text)
    date_from, from_ok = problems.check(lambda: _date(raw, "sale_date_from"), None)
    date_to, to_ok = problems.check(lambda: _date(raw, "sale_date_to"), None)
    if date_from and date_to and date_from > date_to and from_ok and to_ok:
        problems.add("sale_date_from", f"{date_from} is after sale_date_to {date_to}")
    include_remarks, remarks_ok = problems.check(lambda: _flag(raw, "include_remarks"), False)
    # With include_remarks itself bad, the remark columns are not held against `columns`.
    no_columns: tuple[OutputColumn, ...] = ()
    columns, _ = problems.check(
        lambda: resolve_columns(_text_list(raw, "columns"), include_remarks or not remarks_ok),
        no_columns,
    )
    money, _ = problems.check(lambda: _choice(raw, "money", MoneyMode, MoneyMode.CENTS), None)
    bom, bom_ok = problems.check(lambda: _flag(raw, "bom"), False)
    excel_safe, excel_safe_ok = problems.check(lambda: _flag(raw, "excel_safe"), False)
    compression, compression_ok = problems.check(
        lambda: _choice(raw, "compression", Compression, Compression.NONE), Compression.NONE
    )
    output_name, _ = problems.check(lambda: _output_name(raw), None)
    if format_ok:
        for name, value, ok in (("bom", bom, bom_ok), ("excel_safe", excel_safe, excel_safe_ok)):
            if ok and value and export_format is not ExportFormat.CSV:
                problems.add(name, f"applies to csv only, not {export_format.value}")
        packed = compression_ok and compression is not Compression.NONE
        if packed and export_format not in TEXT_FORMATS:
            problems.add(
                "compression",
                f"applies to csv, ndjson and json ({export_format.value} files are "
                "compressed inside)",
            )
    if problems.found:
        raise ExportInputError.of(problems.found)
    return ExportParams(
        format=export_format,
        account_codes=codes,
        statuses=statuses,
        sale_date_from=date_from,
        sale_date_to=date_to,
        columns=columns,
        include_remarks=include_remarks,
        money=money,
        bom=bom,
        excel_safe=excel_safe,
        compression=compression,
        output_name=output_name,
    )
