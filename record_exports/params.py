"""Validated export parameters: one parser for the CLI, the Dagster run config and request rows.

Request rows come from another program, so the parser trusts nothing: every field is
type-checked, unknown fields are refused, lists are bounded, and each error names the field.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from record_exports.columns import MoneyMode, OutputColumn, resolve_columns
from record_exports.errors import ExportInputError
from record_exports.schema import STATUSES

MAX_LIST_ITEMS = 1000
MAX_TEXT_LENGTH = 200
ACCOUNT_CODE_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
OUTPUT_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.+-]{0,199}$")


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
    only if its value is not a plain bool, string, enum, date or tuple), then a field of
    `ExportConfig` (pipelines/export_job.py) and an option of the CLI (pipelines/cli.py);
    tests/pipelines/test_export_job.py fails until all of them agree.
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

    def column_names(self) -> list[str]:
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
        raise ExportInputError(name, f"unknown value {value[:60]!r}; valid: {valid}") from None


def _flag(raw: Mapping[str, Any], name: str) -> bool:
    value = raw.get(name, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ExportInputError(name, f"must be true or false, got {value!r:.60}")
    return value


def _text_list(raw: Mapping[str, Any], name: str) -> list[str]:
    value = raw.get(name, [])
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ExportInputError(name, f"must be a list of strings, got {type(value).__name__}")
    if len(value) > MAX_LIST_ITEMS:
        raise ExportInputError(name, f"has {len(value)} items; at most {MAX_LIST_ITEMS}")
    for item in value:
        if not isinstance(item, str):
            raise ExportInputError(name, f"must hold strings only, got {item!r:.60}")
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
        raise ExportInputError(name, f"must be a date YYYY-MM-DD, got {value!r:.60}")
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
            f"malformed code(s) {', '.join(repr(code[:40]) for code in bad[:5])}; "
            "codes are letters, digits, '_', '.', '-'",
        )
    return tuple(dict.fromkeys(codes))


def _statuses(raw: Mapping[str, Any]) -> tuple[str, ...]:
    statuses = [status.upper() for status in _text_list(raw, "statuses")]
    unknown = [status for status in statuses if status not in STATUSES]
    if unknown:
        raise ExportInputError(
            "statuses",
            f"unknown status(es) {', '.join(repr(s[:40]) for s in unknown[:5])}; "
            f"valid: {', '.join(STATUSES)}",
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
    if not OUTPUT_NAME_PATTERN.fullmatch(value):
        raise ExportInputError(
            "output_name",
            f"{value[:60]!r} is not a usable file name: start with a letter or digit, then "
            "letters, digits, space, '_', '.', '+', '-' (at most 200 characters)",
        )
    return value


def parse_export_params(raw: Mapping[str, Any]) -> ExportParams:
    """Validate JSON-like settings into `ExportParams`, or raise `ExportInputError`."""
    if not isinstance(raw, Mapping):
        raise ExportInputError("params", f"must be a JSON object, got {type(raw).__name__}")
    unknown = [key for key in raw if key not in PARAM_FIELDS]
    if unknown:
        names = ", ".join(repr(str(key)[:40]) for key in unknown[:5])
        raise ExportInputError(
            unknown[0] if isinstance(unknown[0], str) else "params",
            f"unknown field(s) {names}; valid fields: {', '.join(PARAM_FIELDS)}",
        )
    export_format = _choice(raw, "format", ExportFormat, ExportFormat.CSV)
    include_remarks = _flag(raw, "include_remarks")
    date_from = _date(raw, "sale_date_from")
    date_to = _date(raw, "sale_date_to")
    if date_from and date_to and date_from > date_to:
        raise ExportInputError(
            "sale_date_from", f"{date_from} is after sale_date_to {date_to}; swap them"
        )
    params = ExportParams(
        format=export_format,
        account_codes=_account_codes(raw),
        statuses=_statuses(raw),
        sale_date_from=date_from,
        sale_date_to=date_to,
        columns=resolve_columns(_text_list(raw, "columns"), include_remarks),
        include_remarks=include_remarks,
        money=_choice(raw, "money", MoneyMode, MoneyMode.CENTS),
        bom=_flag(raw, "bom"),
        excel_safe=_flag(raw, "excel_safe"),
        compression=_choice(raw, "compression", Compression, Compression.NONE),
        output_name=_output_name(raw),
    )
    _check_format_options(params)
    return params


def _check_format_options(params: ExportParams) -> None:
    if params.format is not ExportFormat.CSV:
        for name in ("bom", "excel_safe"):
            if getattr(params, name):
                raise ExportInputError(name, f"applies to csv only, not {params.format.value}")
    if params.compression is not Compression.NONE and params.format not in TEXT_FORMATS:
        raise ExportInputError(
            "compression",
            f"applies to csv, ndjson and json; {params.format.value} files are compressed "
            "internally",
        )
