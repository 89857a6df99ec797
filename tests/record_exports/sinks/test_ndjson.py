"""NDJSON and JSON: object lines as Polars' own struct JSON encoder builds them, files as
PostgreSQL's `row_to_json` writes the same selection."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
from pathlib import Path

import polars as pl
import pytest

from record_exports.columns import ALL_COLUMNS, MoneyMode, resolve_columns
from record_exports.database import DatabaseTarget
from record_exports.sinks.base import SinkOptions
from record_exports.sinks.ndjson import object_lines
from record_exports.sinks.text import render
from tests.factories import oracle_ndjson
from tests.record_exports.exporting import export, url_of

NASTY = [
    "",
    "plain",
    'quote " and \\ backslash',
    "".join(chr(code) for code in range(0x20)),
    "del \x7f, nbsp \u00a0, line sep \u2028 \u2029",
    "Emoji 🎉🚀 and ümlauts ß, 中文",
    "</script> / slash",
    "x" * 40_000,
    None,
]


def struct_lines(options: SinkOptions) -> pl.Expr:
    """The former encoder: `struct.json_encode`, money unquoted in dollars mode."""
    encoded = pl.struct([render(c, options.money) for c in options.columns]).struct.json_encode()
    if options.money is MoneyMode.DOLLARS:
        for column in options.columns:
            if column.is_money:
                key = re.escape(column.output_name(options.money))
                encoded = encoded.str.replace(
                    f'"{key}":"(-?[0-9]+\\.[0-9]{{2}})"', f'"{key}":${{1}}'
                )
    return encoded


def frame(height: int) -> pl.DataFrame:
    columns = resolve_columns(list(ALL_COLUMNS), True)
    data: dict[str, pl.Series] = {}
    for number, column in enumerate(columns):
        name = column.name
        if column.kind == "text":
            values = [NASTY[(i + number) % len(NASTY)] for i in range(height)]
            data[name] = pl.Series(name, values, dtype=pl.String)
        elif column.kind in ("money", "integer"):
            ints = [None if (i + number) % 7 == 0 else (i * 7919 - 5000) for i in range(height)]
            data[name] = pl.Series(name, ints, dtype=pl.Int64)
        elif column.kind == "date":
            dates = [
                None if i % 5 == 0 else dt.date(2026, 1, 1) + dt.timedelta(i) for i in range(height)
            ]
            data[name] = pl.Series(name, dates, dtype=pl.Date)
        else:
            moments = [
                dt.datetime(2026, 3, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=i * 123_457)
                for i in range(height)
            ]
            data[name] = pl.Series(name, moments, dtype=column.dtype)
    return pl.DataFrame(data)


@pytest.mark.parametrize("money", list(MoneyMode))
def test_object_lines_match_struct_json_encode(money: MoneyMode) -> None:
    columns = resolve_columns(list(ALL_COLUMNS), True)
    options = SinkOptions(columns=columns, money=money)
    data = frame(200)
    ours = data.select(object_lines(options)).to_series().to_list()
    theirs = data.select(struct_lines(options)).to_series().to_list()
    assert ours == theirs
    first = json.loads(ours[1])
    assert list(first) == [column.output_name(money) for column in columns]


def test_every_control_character_round_trips() -> None:
    columns = resolve_columns(["item_name"], False)
    text = "".join(chr(code) for code in range(0x20)) + '"\\'
    data = pl.DataFrame({"item_name": [text]})
    line = data.select(object_lines(SinkOptions(columns=columns))).item()
    assert json.loads(line) == {"item_name": text}
    assert "\\u001f" in line and "\\n" in line


@pytest.mark.parametrize("money", ["cents", "dollars"])
def test_ndjson_equals_row_to_json(pg_records: DatabaseTarget, tmp_path: Path, money: str) -> None:
    path, _ = export(pg_records, tmp_path, f"nd-{money}", format="ndjson", money=money)
    url = url_of(pg_records)
    ours = path.read_bytes()
    assert ours == oracle_ndjson(url, money)
    if money == "dollars":
        first = ours.split(b"\n", 1)[0].decode()
        assert re.search(r'"profit":-?\d+\.\d\d[,}]', first)


@pytest.mark.parametrize("money", ["cents", "dollars"])
def test_json_document_holds_the_ndjson_records(
    pg_records: DatabaseTarget, tmp_path: Path, money: str
) -> None:
    json_path, _ = export(pg_records, tmp_path, "doc", format="json", money=money)
    nd_path, _ = export(pg_records, tmp_path, "lines", format="ndjson", money=money)
    document = json.loads(json_path.read_bytes(), parse_float=decimal.Decimal)
    lines = [
        json.loads(line, parse_float=decimal.Decimal)
        for line in nd_path.read_text(encoding="utf-8").splitlines()
    ]
    assert list(document) == ["records"]
    assert document["records"] == lines
